#include "zfile/format.h"

#include <cstring>

#include "common/crc32c.h"

namespace obd::zfile {
namespace {

constexpr uint8_t kMagic0[8] = {'Z', 'F', 'i', 'l', 'e', 0, 1, 0};
constexpr char kMagic1[16] = {'t', 'u', 'j', 'i', '.', 'y', 'y', 'f', '@', 'A', 'l', 'i', 'b', 'a', 'b', 'a'};
constexpr size_t kDigestOff = 28;

template <typename T>
void put(uint8_t* p, size_t off, T v) {
  for (size_t i = 0; i < sizeof(T); i++) p[off + i] = uint8_t(uint64_t(v) >> (8 * i));
}
template <typename T>
T get(const uint8_t* p, size_t off) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); i++) v |= uint64_t(p[off + i]) << (8 * i);
  return T(v);
}

bool is_pow2(uint32_t v) { return v && !(v & (v - 1)); }

}  // namespace

const char* algorithm_name(Algorithm a) {
  switch (a) {
    case Algorithm::kMiniLzo: return "minilzo";
    case Algorithm::kLz4: return "lz4";
    case Algorithm::kZstd: return "zstd";
  }
  return "unknown";
}

uint32_t compute_digest(const RecordBytes& b) {
  RecordBytes copy = b;
  std::memset(copy.data() + kDigestOff, 0, 4);
  return crc32c_update(0, copy.data(), copy.size());
}

RecordBytes encode(const Record& r) {
  RecordBytes b{};
  uint8_t* p = b.data();
  std::memcpy(p, kMagic0, 8);
  std::memcpy(p + 8, kMagic1, 16);
  put<uint32_t>(p, 24, r.size);
  put<uint64_t>(p, 32, r.flags);
  put<uint64_t>(p, 40, r.index_offset);
  put<uint64_t>(p, 48, r.index_size);
  put<uint64_t>(p, 56, r.original_file_size);
  put<uint32_t>(p, 64, r.index_crc);
  put<uint32_t>(p, 72, r.block_size);
  p[76] = r.algo;
  p[77] = r.level;
  p[78] = r.use_dict;
  put<uint32_t>(p, 84, r.dict_size);
  p[88] = r.verify;
  put<uint32_t>(p, kDigestOff, (r.flags & kFlagDigest) ? compute_digest(b) : r.digest);
  return b;
}

bool has_magic(const uint8_t* p, size_t n) {
  return n >= 24 && std::memcmp(p, kMagic0, 8) == 0 && std::memcmp(p + 8, kMagic1, 16) == 0;
}

Result<Record> decode(const RecordBytes& b, const std::string& where) {
  const uint8_t* p = b.data();
  if (!has_magic(p, b.size())) return Status(Code::kZFILE_BAD_MAGIC, where + ": no ZFile magic");
  Record r;
  r.size = get<uint32_t>(p, 24);
  r.digest = get<uint32_t>(p, kDigestOff);
  r.flags = get<uint64_t>(p, 32);
  r.index_offset = get<uint64_t>(p, 40);
  r.index_size = get<uint64_t>(p, 48);
  r.original_file_size = get<uint64_t>(p, 56);
  r.index_crc = get<uint32_t>(p, 64);
  r.block_size = get<uint32_t>(p, 72);
  r.algo = p[76];
  r.level = p[77];
  r.use_dict = p[78];
  r.dict_size = get<uint32_t>(p, 84);
  r.verify = p[88];
  return r;
}

Status validate_options(const Record& r, const std::string& where) {
  auto bad = [&](const std::string& what) { return Status(Code::kZFILE_BAD_HEADER, where + ": " + what); };
  if (r.size != kStructSize) return bad("size field is " + std::to_string(r.size) + ", expected 96");
  if (r.flags & kFlagIndexCompressed) {
    return Status(Code::kENOTSUP, where + ": compressed jump tables (flag 0x20) are not supported");
  }
  if (r.algo == uint8_t(Algorithm::kMiniLzo)) {
    return Status(Code::kENOTSUP, where + ": algorithm 0 (miniLZO) is not supported");
  }
  if (r.algo != uint8_t(Algorithm::kLz4) && r.algo != uint8_t(Algorithm::kZstd)) {
    return bad("algo field is " + std::to_string(r.algo) + ", expected 1 (lz4) or 2 (zstd)");
  }
  if (!is_pow2(r.block_size) || r.block_size < kMinBlockSize || r.block_size > kMaxBlockSize) {
    return bad("block_size field is " + std::to_string(r.block_size) + ", expected a power of two in 512..65536");
  }
  if (r.use_dict || r.dict_size) return Status(Code::kENOTSUP, where + ": compression dictionaries are not supported");
  if (r.verify > 1) return bad("verify field is " + std::to_string(r.verify) + ", expected 0 or 1");
  return Status::ok();
}

Status validate_digest(const RecordBytes& b, const Record& r, const std::string& where) {
  if (!(r.flags & kFlagDigest)) return Status::ok();
  uint32_t want = compute_digest(b);
  if (want != r.digest) {
    return Status(Code::kZFILE_DIGEST_MISMATCH, where + ": digest field is " + std::to_string(r.digest) +
                                                    ", the record's CRC-32C is " + std::to_string(want));
  }
  return Status::ok();
}

}  // namespace obd::zfile
