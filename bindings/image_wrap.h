// Access to the Image behind a NativeImage, for bindings that serve it
// (the FUSE export).
#pragma once
#include <napi.h>

#include "image/image.h"

namespace obdjs {

// The image of a NativeImage; null when `v` is not one or it is closed.
obd::ImagePtr unwrap_image(const Napi::Value& v);

}  // namespace obdjs
