// Conversions shared by the binding files: tar-wrapper and ZFile metadata to
// plain JS objects, and ZFile options from the objects lib/*.ts validated.
#pragma once
#include <napi.h>

#include "tar/wrapper.h"
#include "zfile/convert.h"

namespace obdjs {

Napi::Object tar_info_js(Napi::Env env, const obd::tar::WrapInfo& t);
// header, trailer, headerOverwritten, algorithm, verify, fileSize, blockSize,
// blocks, originalSize, indexOffset, maxStoredBlock (lib/zfile.ts ZFileInfo).
Napi::Object zfile_info_js(Napi::Env env, const obd::ZFileInfo& z);
// { algorithm, blockSize, verify?, overwriteHeader?, threads? } with upstream's defaults.
obd::ZFileOptions zfile_options_from(const Napi::Object& o);

}  // namespace obdjs
