// Opening a layer blob the way upstream does (format spec §1): strip an
// optional tar wrapper, then decompress if it is a ZFile. The result is the
// LSMT layer file (or whatever the blob holds, when it is neither).
#pragma once
#include "io/file.h"

namespace obd {

Result<FilePtr> open_layer_blob(FilePtr blob);

}  // namespace obd
