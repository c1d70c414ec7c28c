// Writes a whole virtual device to a file descriptor. A regular file gets
// the device at the descriptor's offset (at its end when opened to append,
// as `>>` does) and only the extents that may hold data, so it stays
// sparse; a pipe gets every byte.
#pragma once
#include "image/image.h"

namespace obd {

Status dump_image(Image& img, int fd);

}  // namespace obd
