// The BlockDevice that serves an Image (the overlaybd stack) to frontends.
#pragma once
#include <memory>

#include "device/block_device.h"
#include "image/image.h"

namespace obd {

// Reads and writes go to the Image as they come; flush is Image::sync,
// discard is punch_hole and write-zeroes is Image::write_zeroes.
std::unique_ptr<BlockDevice> make_image_device(ImagePtr image);

}  // namespace obd
