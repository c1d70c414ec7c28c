// The one tar header codec: the on-disk block's field layout, the number,
// string and checksum decoders, and the encoders. Used by the streaming OCI
// reader (cpp/archive) and by the layer blob's tar wrapper (wrapper.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace obd::tar {

constexpr size_t kBlock = 512;

struct Field {
  size_t off, len;
};
// POSIX ustar layout; old GNU and star reuse the tail differently (below).
constexpr Field kName{0, 100}, kMode{100, 8}, kUid{108, 8}, kGid{116, 8}, kSize{124, 12}, kMtime{136, 12},
    kChksum{148, 8}, kLinkname{157, 100}, kMagic{257, 6}, kVersion{263, 2}, kUname{265, 32}, kGname{297, 32}, kDevmajor{329, 8},
    kDevminor{337, 8}, kPrefix{345, 155};
constexpr size_t kTypeflag = 156;
// star keeps atime/ctime after a shorter prefix and ends with "tar\0".
constexpr Field kStarPrefix{345, 131};
// Old GNU: four sparse entries (offset, numbytes), a continuation flag and
// the real size, in what ustar calls the prefix.
constexpr size_t kGnuSparseEntries = 386, kGnuSparseCount = 4, kGnuIsExtended = 482;
constexpr Field kGnuRealSize{483, 12};
// An old GNU sparse extension block: 21 entries then the continuation flag.
constexpr size_t kGnuExtCount = 21, kGnuExtIsExtended = 504;
constexpr size_t kGnuSparseEntryLen = 24;  // 12-byte offset + 12-byte numbytes

enum class Format { kV7, kUstar, kGnu, kStar };
Format detect_format(const uint8_t* blk);

bool is_zero_block(const uint8_t* blk);

// The header checksum matches as an unsigned or a signed byte sum (old tars
// used signed char).
bool checksum_ok(const uint8_t* blk);

// A numeric field: octal digits padded with spaces or NULs on either side,
// or GNU/star base-256 (high bit set; two's complement, so mtimes can be
// negative). False when malformed or beyond int64.
bool parse_number(const uint8_t* f, size_t len, int64_t* out);
inline bool parse_number(const uint8_t* blk, Field f, int64_t* out) { return parse_number(blk + f.off, f.len, out); }

// The ustar magic and version ("ustar\0" "00"), as POSIX writes them.
bool is_posix_ustar(const uint8_t* blk);

// A text field up to its first NUL, bytes verbatim.
std::string field_str(const uint8_t* blk, Field f);

// The field's raw bytes for error messages (printable ASCII, else escaped).
std::string printable(const std::string& s, size_t max = 200);

// Encoders. Numbers use the layout of upstream's tools (see
// vectors/zfile/A.lz4bs4.tar): "%6o \0" in 8-byte fields, "%11o " in
// 12-byte ones; false when `v` does not fit.
bool put_octal(uint8_t* blk, Field f, uint64_t v);
// Copies `s` into the field (NUL padded); false when it does not fit.
bool put_str(uint8_t* blk, Field f, std::string_view s);
// Stamps the POSIX ustar magic and version and then the checksum: the last
// step of building a header.
void seal_ustar(uint8_t* blk);

}  // namespace obd::tar
