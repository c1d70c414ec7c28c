// Builds an obd::ImageSpec from the plain object lib/image.ts passes down:
// { lowers: string[] (bottom first), upper?: { data, index? }, ioEngine?: 'psync'|'io_uring' }.
// TypeScript has validated it; this only copies values.
#pragma once
#include <napi.h>

#include "image/image.h"

namespace obdjs {

obd::ImageSpec image_spec_from(const Napi::Object& o);

}  // namespace obdjs
