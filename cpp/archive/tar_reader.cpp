#include "archive/tar_reader.h"

#include <cstring>
#include <optional>

#include "tar/header.h"
#include "tar/pax.h"
#include "archive/tar_path.h"
#include "archive/tar_sparse.h"

namespace obd {

using namespace archive;
using namespace tar;  // the header codec

namespace {

// Metadata entries are held in memory: cap what a hostile archive can make
// us allocate. One pax or long-name header, all pax data before one entry,
// and the global pax state.
constexpr uint64_t kMaxMeta = 1 << 20;
constexpr uint64_t kMaxPendingPax = 4 << 20;
constexpr uint64_t kMaxGlobalPax = 1 << 20;

uint64_t pad_of(uint64_t n) { return (kBlock - n % kBlock) % kBlock; }

bool header_only(char tf) { return tf >= '1' && tf <= '6'; }

// Keys that describe one file; a global header carrying them is ignored for
// them rather than applied to every following entry.
bool per_file_key(const std::string& k) {
  return k == "path" || k == "linkpath" || k == "size" || k.rfind("GNU.sparse.", 0) == 0;
}

void set_xattr(TarEntry* e, std::string name, std::string value) {
  for (auto& kv : e->xattrs) {
    if (kv.first == name) {
      kv.second = std::move(value);
      return;
    }
  }
  e->xattrs.emplace_back(std::move(name), std::move(value));
}

}  // namespace

const char* tar_type_name(TarEntry::Type t) {
  switch (t) {
    case TarEntry::Type::kFile: return "file";
    case TarEntry::Type::kHardLink: return "hardlink";
    case TarEntry::Type::kSymlink: return "symlink";
    case TarEntry::Type::kCharDev: return "chardev";
    case TarEntry::Type::kBlockDev: return "blockdev";
    case TarEntry::Type::kDir: return "dir";
    case TarEntry::Type::kFifo: return "fifo";
  }
  return "?";
}

// Extended headers collected for the entry that follows them.
struct TarReader::Pending {
  PaxRecords pax;
  uint64_t pax_bytes = 0;
  std::optional<std::string> long_name, long_link;
};

TarReader::TarReader(ByteStreamPtr stream) : stream_(std::move(stream)) {}
TarReader::~TarReader() = default;

Result<std::unique_ptr<TarReader>> TarReader::open(ByteStreamPtr stream) {
  if (!stream) return Status(Code::kEINVAL, "TarReader::open: no stream");
  return std::unique_ptr<TarReader>(new TarReader(std::move(stream)));
}

Status TarReader::error(Code c, const std::string& what, uint64_t off) const {
  std::string msg = stream_->name() + ": ";
  if (!cur_name_.empty()) msg += "entry \"" + printable(cur_name_) + "\": ";
  return Status(c, msg + what + " at tar offset " + std::to_string(off));
}

Result<size_t> TarReader::read_raw(void* buf, size_t n) {
  OBD_ASSIGN_OR_RETURN(size_t k, read_full(*stream_, buf, n));
  pos_ += k;
  return k;
}

Status TarReader::read_exact(void* buf, size_t n, const std::string& what) {
  uint64_t off = pos_;
  OBD_ASSIGN_OR_RETURN(size_t k, read_raw(buf, n));
  if (k != n) {
    return error(Code::kTAR_TRUNCATED,
                 what + " ends early (" + std::to_string(k) + " of " + std::to_string(n) + " bytes)", off);
  }
  return Status::ok();
}

Status TarReader::skip(uint64_t n, const std::string& what) {
  uint64_t off = pos_, left = n;
  scratch_.resize(64 * 1024);
  while (left) {
    OBD_ASSIGN_OR_RETURN(size_t k, stream_->read(scratch_.data(), std::min<uint64_t>(left, scratch_.size())));
    if (k == 0) {
      return error(Code::kTAR_TRUNCATED,
                   what + " ends early (" + std::to_string(n - left) + " of " + std::to_string(n) + " bytes)", off);
    }
    pos_ += k;
    left -= k;
  }
  return Status::ok();
}

Result<std::string> TarReader::read_meta(uint64_t size, const std::string& what) {
  if (size > kMaxMeta) {
    return error(Code::kTAR_BAD_HEADER, what + " of " + std::to_string(size) + " bytes is over the 1 MiB limit",
                 pos_);
  }
  std::string data(size, '\0');
  OBD_TRY(read_exact(data.data(), size, what));
  OBD_TRY(skip(pad_of(size), what + " padding"));
  return data;
}

// Reads one header block; false at the end of the archive: a clean EOF, or
// a zero block followed by EOF or by another zero block.
Result<bool> TarReader::read_header_block(uint8_t* blk) {
  uint64_t off = pos_;
  OBD_ASSIGN_OR_RETURN(size_t k, read_raw(blk, kBlock));
  if (k == 0) return false;
  if (k < kBlock) return error(Code::kTAR_TRUNCATED, "header block ends early (" + std::to_string(k) + " of 512 bytes)", off);
  if (!is_zero_block(blk)) return true;
  uint8_t second[kBlock];
  OBD_ASSIGN_OR_RETURN(k, read_raw(second, kBlock));
  if (k == 0) return false;
  if (k < kBlock) return error(Code::kTAR_TRUNCATED, "end-of-archive block ends early", off + kBlock);
  if (is_zero_block(second)) return false;
  return error(Code::kTAR_BAD_HEADER, "a zero block is followed by a non-zero block", off + kBlock);
}

// Reads past the end-of-archive marker to the end of the stream, so that a
// compressed stream's trailer is checked and consumed() covers the blob.
Status TarReader::drain() {
  scratch_.resize(64 * 1024);
  for (;;) {
    OBD_ASSIGN_OR_RETURN(size_t k, stream_->read(scratch_.data(), scratch_.size()));
    if (k == 0) return Status::ok();
    pos_ += k;
  }
}

Result<bool> TarReader::next(TarEntry* e) {
  if (!failed_.is_ok()) return failed_;
  auto r = next_entry(e);
  if (!r.is_ok()) failed_ = r.status();
  return r;
}

Result<bool> TarReader::next_entry(TarEntry* e) {
  if (ended_) return false;
  if (remaining_ + padding_) OBD_TRY(skip(remaining_ + padding_, "entry data"));
  remaining_ = padding_ = 0;
  cur_name_.clear();
  Pending p;
  uint64_t first = pos_;
  for (;;) {
    uint8_t blk[kBlock];
    uint64_t off = pos_;
    OBD_ASSIGN_OR_RETURN(bool got, read_header_block(blk));
    if (!got) {
      if (off != first) return error(Code::kTAR_TRUNCATED, "archive ends after an extended header, before its entry", off);
      ended_ = true;
      OBD_TRY(drain());
      return false;
    }
    cur_name_ = field_str(blk, kName);
    if (!checksum_ok(blk)) return error(Code::kTAR_BAD_HEADER, "header checksum mismatch (not a tar header?)", off);
    char tf = char(blk[kTypeflag]);
    bool meta = tf == 'x' || tf == 'X' || tf == 'g' || tf == 'L' || tf == 'K' || tf == 'V';
    if (!meta) {
      OBD_TRY(finish_entry(blk, p, e));
      return true;
    }
    int64_t size;
    if (!parse_number(blk, kSize, &size) || size < 0) return error(Code::kTAR_BAD_HEADER, "bad size field", off);
    if (tf == 'V') {  // a GNU volume label names the archive, not a file
      OBD_TRY(skip(uint64_t(size) + pad_of(uint64_t(size)), "volume label"));
      continue;
    }
    std::string what = tf == 'L' ? "GNU long name" : tf == 'K' ? "GNU long link" : "pax header";
    OBD_ASSIGN_OR_RETURN(std::string data, read_meta(uint64_t(size), what));
    if (tf == 'L' || tf == 'K') {
      data.resize(std::min(data.size(), data.find('\0')));
      (tf == 'L' ? p.long_name : p.long_link) = std::move(data);
      continue;
    }
    PaxRecords recs;
    std::string err = parse_pax_records(data, &recs);
    if (!err.empty()) return error(Code::kTAR_BAD_HEADER, err, off + kBlock);
    if (tf == 'g') {
      // Later global values replace earlier ones; an empty value unsets.
      for (auto& [k, v] : recs) {
        std::erase_if(global_pax_, [&](const auto& kv) { return kv.first == k; });
        if (!v.empty()) global_pax_.emplace_back(k, v);
      }
      uint64_t total = 0;
      for (auto& kv : global_pax_) total += kv.first.size() + kv.second.size();
      if (total > kMaxGlobalPax) return error(Code::kTAR_BAD_HEADER, "global pax headers exceed 1 MiB", off);
      continue;
    }
    p.pax_bytes += data.size();
    if (p.pax_bytes > kMaxPendingPax) return error(Code::kTAR_BAD_HEADER, "pax headers of one entry exceed 4 MiB", off);
    for (auto& r : recs) p.pax.push_back(std::move(r));
  }
}

Status TarReader::finish_entry(const uint8_t* blk, Pending& p, TarEntry* e) {
  using Type = TarEntry::Type;
  const uint64_t off = pos_ - kBlock;
  *e = TarEntry{};
  Format fmt = detect_format(blk);
  std::string name = field_str(blk, kName);
  if (fmt == Format::kUstar || fmt == Format::kStar) {
    std::string prefix = field_str(blk, fmt == Format::kStar ? kStarPrefix : kPrefix);
    if (!prefix.empty()) name = prefix + "/" + name;
  }
  std::string link = field_str(blk, kLinkname);
  const std::string header_name = name, header_link = link;
  cur_name_ = name;

  auto bad = [&](const std::string& what) { return error(Code::kTAR_BAD_HEADER, what, off); };
  auto num = [&](Field f, const char* what, int64_t lo, int64_t hi, int64_t* v) -> Status {
    if (!parse_number(blk, f, v)) {
      return bad(std::string("bad ") + what + " field \"" +
                 printable(std::string(reinterpret_cast<const char*>(blk + f.off), f.len)) + "\"");
    }
    if (*v < lo || *v > hi) return bad(std::string(what) + " " + std::to_string(*v) + " is out of range");
    return Status::ok();
  };
  int64_t mode, uid, gid, size, mtime;
  OBD_TRY(num(kMode, "mode", 0, INT64_MAX, &mode));
  OBD_TRY(num(kUid, "uid", 0, UINT32_MAX, &uid));
  OBD_TRY(num(kGid, "gid", 0, UINT32_MAX, &gid));
  OBD_TRY(num(kSize, "size", 0, INT64_MAX, &size));
  OBD_TRY(num(kMtime, "mtime", INT64_MIN, INT64_MAX, &mtime));

  const int64_t header_size = size;
  char tf = char(blk[kTypeflag]);
  switch (tf) {
    case '0': case '7': case 'S': e->type = Type::kFile; break;
    // Old (pre-POSIX) archives mark directories only by a trailing slash.
    case '\0': e->type = !name.empty() && name.back() == '/' ? Type::kDir : Type::kFile; break;
    case '1': e->type = Type::kHardLink; break;
    case '2': e->type = Type::kSymlink; break;
    case '3': e->type = Type::kCharDev; break;
    case '4': e->type = Type::kBlockDev; break;
    case '5': case 'D': e->type = Type::kDir; break;  // 'D': GNU dumpdir, its listing is skipped
    case '6': e->type = Type::kFifo; break;
    default: {
      char hex[8];
      snprintf(hex, sizeof hex, "0x%02x", unsigned(uint8_t(tf)));
      return bad(std::string("unsupported entry type ") + hex);
    }
  }
  if (e->type == Type::kCharDev || e->type == Type::kBlockDev) {
    int64_t ma, mi;
    OBD_TRY(num(kDevmajor, "devmajor", 0, UINT32_MAX, &ma));
    OBD_TRY(num(kDevminor, "devminor", 0, UINT32_MAX, &mi));
    e->devmajor = uint32_t(ma);
    e->devminor = uint32_t(mi);
  }
  e->mode = uint32_t(mode) & 07777;
  e->uid = uint32_t(uid);
  e->gid = uint32_t(gid);
  e->mtime_sec = mtime;

  // pax records: globals first, then this entry's own, the last one winning.
  PaxRecords recs;
  for (auto& kv : global_pax_)
    if (!per_file_key(kv.first)) recs.push_back(kv);
  for (auto& kv : p.pax) recs.push_back(std::move(kv));
  std::optional<std::string> sparse_name, sparse_map01;
  std::optional<uint64_t> realsize, numblocks, major, minor;
  std::vector<Extent> map00;
  bool half00 = false;
  auto dec = [&](const std::string& k, const std::string& v, uint64_t max, uint64_t* out) -> Status {
    if (!parse_decimal(v, max, out)) return bad("bad pax " + k + " \"" + printable(v, 40) + "\"");
    return Status::ok();
  };
  for (auto& [k, v] : recs) {
    uint64_t n;
    // An empty value cancels a global or earlier value: the header's stands.
    if (v.empty() && k.rfind("SCHILY.xattr.", 0) != 0) {
      if (k == "path") name = header_name;
      if (k == "linkpath") link = header_link;
      if (k == "size") size = header_size;
      if (k == "uid") e->uid = uint32_t(uid);
      if (k == "gid") e->gid = uint32_t(gid);
      if (k == "mtime") e->mtime_sec = mtime, e->mtime_nsec = 0;
      continue;
    }
    if (k == "path") {
      name = v;
    } else if (k == "linkpath") {
      link = v;
    } else if (k == "size") {
      OBD_TRY(dec(k, v, INT64_MAX, &n));
      size = int64_t(n);
    } else if (k == "uid" || k == "gid") {
      OBD_TRY(dec(k, v, UINT32_MAX, &n));
      (k == "uid" ? e->uid : e->gid) = uint32_t(n);
    } else if (k == "mtime") {
      if (!parse_pax_time(v, &e->mtime_sec, &e->mtime_nsec)) return bad("bad pax mtime \"" + printable(v, 40) + "\"");
    } else if (k.rfind("SCHILY.xattr.", 0) == 0) {
      set_xattr(e, k.substr(13), v);
    } else if (k.rfind("LIBARCHIVE.xattr.", 0) == 0) {
      std::string xn, xv;
      if (!percent_decode(k.substr(17), &xn) || !base64_decode(v, &xv)) return bad("bad pax " + printable(k, 80));
      set_xattr(e, std::move(xn), std::move(xv));
    } else if (k == "SCHILY.devmajor" || k == "SCHILY.devminor") {
      OBD_TRY(dec(k, v, UINT32_MAX, &n));
      (k == "SCHILY.devmajor" ? e->devmajor : e->devminor) = uint32_t(n);
    } else if (k == "GNU.sparse.name") {
      sparse_name = v;
    } else if (k == "GNU.sparse.realsize" || k == "GNU.sparse.size") {
      OBD_TRY(dec(k, v, INT64_MAX, &n));
      realsize = n;
    } else if (k == "GNU.sparse.major" || k == "GNU.sparse.minor") {
      OBD_TRY(dec(k, v, 1000, &n));
      (k == "GNU.sparse.major" ? major : minor) = n;
    } else if (k == "GNU.sparse.numblocks") {
      OBD_TRY(dec(k, v, kMaxSparseSegments, &n));
      numblocks = n;
    } else if (k == "GNU.sparse.map") {
      sparse_map01 = v;
    } else if (k == "GNU.sparse.offset" || k == "GNU.sparse.numbytes") {
      // pax 0.0: the map as repeated offset/numbytes pairs, in order.
      if ((k == "GNU.sparse.offset") == half00) return bad("pax sparse 0.0 offset/numbytes out of order");
      OBD_TRY(dec(k, v, INT64_MAX, &n));
      if (!half00) {
        if (map00.size() >= kMaxSparseSegments) return bad("sparse map has too many segments");
        map00.push_back({n, 0});
      } else {
        map00.back().len = n;
      }
      half00 = !half00;
    }
  }
  if (half00) return bad("pax sparse 0.0 offset without numbytes");
  // GNU long names override pax names, as in Go's archive/tar (containerd).
  if (p.long_name) name = *p.long_name;
  if (p.long_link) link = *p.long_link;
  if (sparse_name) name = *sparse_name;
  cur_name_ = name;

  uint64_t stored = header_only(tf) ? 0 : uint64_t(size);
  remaining_ = stored;
  padding_ = pad_of(stored);

  // Sparse files: old GNU 'S', or a pax entry with GNU.sparse.* records.
  bool sparse = false;
  std::vector<Extent> map;
  if (tf == 'S') {
    sparse = true;
    int64_t rs;
    OBD_TRY(num(kGnuRealSize, "sparse real size", 0, INT64_MAX, &rs));
    realsize = uint64_t(rs);
    std::string err = parse_gnu_sparse_slots(blk + kGnuSparseEntries, kGnuSparseCount, &map);
    if (!err.empty()) return bad(err);
    bool more = blk[kGnuIsExtended] != 0;
    while (more) {
      uint8_t ext[kBlock];
      OBD_TRY(read_exact(ext, kBlock, "old GNU sparse extension block"));
      err = parse_gnu_sparse_slots(ext, kGnuExtCount, &map);
      if (!err.empty()) return bad(err);
      more = ext[kGnuExtIsExtended] != 0;
    }
  } else if (major || minor || sparse_map01 || !map00.empty() || realsize) {
    sparse = true;
    if (e->type != Type::kFile) return bad("pax sparse records on an entry that is not a regular file");
    if (!realsize) return bad("pax sparse entry without GNU.sparse.realsize or GNU.sparse.size");
    if (major.value_or(0) == 1 && minor.value_or(0) == 0) {
      SparseMap10Parser parser;
      while (!parser.done()) {
        if (remaining_ < kBlock) return bad("sparse 1.0 map runs past the entry's data");
        uint8_t mb[kBlock];
        OBD_TRY(read_exact(mb, kBlock, "sparse 1.0 map"));
        remaining_ -= kBlock;
        std::string err = parser.feed(mb, kBlock);
        if (!err.empty()) return bad(err);
      }
      map = parser.take();
    } else if (major.value_or(0) == 0 && minor.value_or(1) <= 1) {
      if (sparse_map01) {
        std::string err = parse_sparse_map_01(*sparse_map01, &map);
        if (!err.empty()) return bad(err);
      } else {
        map = std::move(map00);
      }
      if (numblocks && *numblocks != map.size()) {
        return bad("GNU.sparse.numblocks is " + std::to_string(*numblocks) + " but the map has " +
                   std::to_string(map.size()) + " segments");
      }
    } else {
      return bad("unknown pax sparse format " + std::to_string(major.value_or(0)) + "." +
                 std::to_string(minor.value_or(0)));
    }
  }
  if (sparse) {
    std::string err = validate_sparse(map, *realsize, remaining_);
    if (!err.empty()) return bad(err);
    e->sparse = public_sparse_map(map, *realsize);
    e->size = *realsize;
  } else {
    e->size = e->type == Type::kFile ? stored : 0;
  }
  e->data_offset = pos_;

  if (name.find('\0') != std::string::npos || link.find('\0') != std::string::npos) {
    return error(Code::kTAR_UNSAFE_PATH, "name or link target contains a NUL byte", off);
  }
  e->path = clean_path(name);
  if (e->type == Type::kHardLink) {
    e->link = clean_path(link);
    if (e->link.empty()) return bad("hard link to the root (empty target)");
  } else if (e->type == Type::kSymlink) {
    e->link = link;
  }
  cur_name_ = e->path;
  return Status::ok();
}

Result<size_t> TarReader::read_data(void* buf, size_t n) {
  if (!failed_.is_ok()) return failed_;
  if (remaining_ == 0 || n == 0) return size_t(0);
  uint64_t off = pos_;
  auto r = stream_->read(buf, std::min<uint64_t>(n, remaining_));
  if (r.is_ok() && r.value() == 0) {
    r = error(Code::kTAR_TRUNCATED, "data ends early, " + std::to_string(remaining_) + " bytes missing", off);
  }
  if (!r.is_ok()) return failed_ = r.status();
  size_t k = r.value();
  pos_ += k;
  remaining_ -= k;
  return k;
}

}  // namespace obd
