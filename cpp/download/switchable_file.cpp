#include "download/switchable_file.h"

namespace obd::download {

SwitchableFile::SwitchableFile(FilePtr inner, std::string name) : cur_(std::move(inner)), name_(std::move(name)) {}

void SwitchableFile::switch_to(FilePtr next) {
  if (!next) return;
  cur_.store(std::move(next), std::memory_order_release);
  switched_.store(true, std::memory_order_release);
}

}  // namespace obd::download
