// Opening a layer blob the way upstream does (format spec §1): strip an
// optional tar wrapper, then decompress if the payload is a ZFile. This is
// the one place that spells the sequence out; every reader of layer blobs
// (image, inspect, commit, ZFile tools, fuzzers) goes through it.
#pragma once
#include "layer/opener.h"
#include "tar/wrapper.h"

namespace obd::layer {

// The stages of an opened blob, outermost first.
struct OpenedBlob {
  tar::WrapInfo tar;     // how (and whether) it was tar wrapped
  FilePtr payload;       // inside the tar wrapper (the blob when unwrapped)
  bool zfile = false;    // the payload is a ZFile
  FilePtr content;       // decompressed payload: the LSMT file, normally
};

// Unwraps and opens `blob`. With `decompress` false the ZFile is detected
// but not opened (content == payload), for tools that read it raw.
Result<OpenedBlob> open_blob(FilePtr blob, bool decompress = true);

// The same for a blob the opener finds.
Result<OpenedBlob> open_blob(BlobOpener& opener, const LayerRef& ref, bool decompress = true);

}  // namespace obd::layer
