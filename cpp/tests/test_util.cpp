#include "tests/test_util.h"

#include "layer/ops.h"
#include "lsmt/rw_layer.h"

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace obd::test {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/obd-test-XXXXXX";
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp " + tmpl);
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::vector<uint8_t> random_bytes(std::mt19937_64& rng, size_t n) {
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = uint8_t(rng());
  return v;
}

Status make_lower(const std::string& path, const std::vector<uint8_t>& content,
                  int zfile_algorithm) {
  std::string data = path + ".rw.data", index = path + ".rw.index";
  lsmt::CreateOptions co;
  co.virtual_size = content.size();
  OBD_TRY(lsmt::create_rw_layer(data, index, co));
  {
    OBD_ASSIGN_OR_RETURN(auto rw, lsmt::RwLayer::open(data, index, true));
    const size_t kBlock = 4096;
    for (size_t off = 0; off < content.size(); off += kBlock) {
      size_t n = std::min(kBlock, content.size() - off);
      bool zero = true;
      for (size_t i = off; i < off + n && zero; i++) zero = content[i] == 0;
      if (!zero) OBD_TRY(rw->write(content.data() + off, off / lsmt::kSector, n / lsmt::kSector));
    }
    OBD_TRY(rw->sync());
  }
  layer::CommitOutput out;
  out.path = path;
  if (zfile_algorithm >= 0) {
    out.zfile = ZFileOptions{};
    out.zfile->algorithm = zfile::Algorithm(zfile_algorithm);
  }
  return layer::commit_rw_layer(data, index, {}, out);
}

}  // namespace obd::test
