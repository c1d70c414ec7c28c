// Writes a whole virtual device to a file descriptor: a regular file gets
// only the extents that may hold data (it stays sparse), a pipe every byte.
#pragma once
#include "image/image.h"

namespace obd {

Status dump_image(Image& img, int fd);

}  // namespace obd
