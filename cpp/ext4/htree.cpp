#include "ext4/htree.h"

#include <algorithm>
#include <cstring>

#include "ext4/dir_block.h"
#include "ext4/inode.h"

namespace obd::ext4 {

namespace {

// Root block: "." (12 bytes), ".." spanning the block, whose slack holds
// the root info (8 bytes) and then the index entries.
constexpr uint32_t kRootInfoOff = 24;
constexpr uint32_t kRootIndexOff = 32;
// Index node: one unused record spanning the block, then the entries.
constexpr uint32_t kNodeIndexOff = 8;
constexpr uint32_t kIndexEntry = 8;  // hash, block

void put16(char* p, uint16_t v) {
  p[0] = char(v & 0xff);
  p[1] = char(v >> 8);
}
void put32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = char((v >> (8 * i)) & 0xff);
}

struct Keyed {
  uint32_t hash = 0, minor = 0;
  const DirName* e = nullptr;
};

struct IndexEntry {
  uint32_t hash;  // the first hash of the child, bit 0 set when it continues the previous child
  uint32_t block;
};

// count/limit, the first child (its hash is implied), then the others.
void put_index(char* at, uint32_t limit, const IndexEntry* ents, size_t n) {
  put16(at, uint16_t(limit));
  put16(at + 2, uint16_t(n));
  put32(at + 4, ents[0].block);
  for (size_t i = 1; i < n; ++i) {
    put32(at + kIndexEntry * i, ents[i].hash);
    put32(at + kIndexEntry * i + 4, ents[i].block);
  }
}

// Packs the names in order into whole blocks; returns where each block starts.
std::vector<size_t> pack(const std::vector<Keyed>& names, uint32_t bs) {
  std::vector<size_t> starts;
  uint32_t used = bs;
  for (size_t i = 0; i < names.size(); ++i) {
    uint32_t sz = dirent_size(names[i].e->name.size());
    if (used + sz > bs) {
      starts.push_back(i);
      used = 0;
    }
    used += sz;
  }
  return starts;
}

// Writes names[from, to) into `blk` from `off`, the last record stretched
// to the end of the block.
void fill_block(const Fs& fs, char* blk, uint32_t off, const std::vector<Keyed>& names, size_t from, size_t to) {
  const uint32_t bs = fs.get()->blocksize;
  for (size_t i = from; i < to; ++i) {
    const DirName& d = *names[i].e;
    uint32_t sz = i + 1 == to ? bs - off : dirent_size(d.name.size());
    put_dirent(fs, blk + off, d.ino, d.name, d.ftype, sz);
    off += sz;
  }
}

// Resizes the directory to `blocks` blocks and sets or clears its index flag.
Status reshape(const Fs& fs, ext2_ino_t dir, InodeBuf& b, uint64_t blocks, bool indexed) {
  ext2_filsys f = fs.get();
  uint64_t cur = EXT2_I_SIZE(b.small()) / f->blocksize;
  if (blocks > cur) OBD_TRY(grow_dir(fs, dir, b, blocks - cur));
  if (blocks < cur) {
    errcode_t err = ext2fs_punch(f, dir, b.small(), nullptr, blocks, ~0ull);
    if (err) return fs.error(err, "shrinking directory inode " + std::to_string(dir));
    err = ext2fs_inode_size_set(f, b.small(), blocks * f->blocksize);
    if (err) return fs.error(err, "shrinking directory inode " + std::to_string(dir));
  }
  if (indexed)
    b.large()->i_flags |= EXT2_INDEX_FL;
  else
    b.large()->i_flags &= ~EXT2_INDEX_FL;
  return write_inode(fs, dir, b);
}

}  // namespace

Status rewrite_dir(const Fs& fs, ext2_ino_t dir, ext2_ino_t parent, std::vector<DirName> entries) {
  ext2_filsys f = fs.get();
  const uint32_t bs = f->blocksize;
  InodeBuf b(fs);
  OBD_TRY(read_inode(fs, dir, b));

  // Hash as the kernel will: the filesystem's default version, its
  // signedness flag, its seed. Other versions (casefolding) stay unindexed.
  int version = f->super->s_def_hash_version;
  bool indexable = (version == EXT2_HASH_LEGACY || version == EXT2_HASH_HALF_MD4 || version == EXT2_HASH_TEA) &&
                   !(b.large()->i_flags & EXT4_CASEFOLD_FL) && ext2fs_has_feature_dir_index(f->super);
  int alg = version;
  if (indexable && (f->super->s_flags & EXT2_FLAGS_UNSIGNED_HASH)) alg += 3;
  std::sort(entries.begin(), entries.end(), [](const DirName& a, const DirName& c) { return a.name < c.name; });
  std::vector<Keyed> names(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    names[i].e = &entries[i];
    if (!indexable) continue;
    ext2_dirhash_t h = 0, minor = 0;
    errcode_t err = ext2fs_dirhash2(alg, entries[i].name.data(), int(entries[i].name.size()), f->encoding, 0,
                                    f->super->s_hash_seed, &h, &minor);
    if (err) return fs.error(err, "hashing \"" + entries[i].name + "\" in directory inode " + std::to_string(dir));
    names[i].hash = uint32_t(h) & ~1u;
    names[i].minor = uint32_t(minor);
  }
  // Ties keep name order (the sort above): the same entries, the same bytes.
  std::stable_sort(names.begin(), names.end(), [](const Keyed& a, const Keyed& c) {
    return a.hash != c.hash ? a.hash < c.hash : a.minor < c.minor;
  });

  uint64_t total = 24;
  for (const auto& e : entries) total += dirent_size(e.name.size());
  if (total <= bs) {
    // One plain block: ".", "..", the names.
    std::vector<char> blk(bs, 0);
    put_dirent(fs, blk.data(), dir, ".", EXT2_FT_DIR, 12);
    put_dirent(fs, blk.data() + 12, parent, "..", EXT2_FT_DIR, names.empty() ? bs - 12 : 12);
    fill_block(fs, blk.data(), 24, names, 0, names.size());
    OBD_TRY(reshape(fs, dir, b, 1, false));
    OBD_ASSIGN_OR_RETURN(blk64_t pblk, dir_block_addr(fs, dir, b, 0));
    if (!pblk) return Status(Code::kEXT4_ERROR, "directory inode " + std::to_string(dir) + " has no first block");
    return write_dir_block(fs, dir, pblk, blk.data());
  }

  std::vector<size_t> leaves = pack(names, bs);
  const size_t n = leaves.size();
  const uint32_t root_limit = (bs - kRootIndexOff) / kIndexEntry;
  const uint32_t node_limit = (bs - kNodeIndexOff) / kIndexEntry;
  // Two levels at most (no largedir): beyond that the directory stays
  // unindexed, which is still valid, only slower to search.
  size_t nodes = n <= root_limit ? 0 : (n + node_limit - 1) / node_limit;
  if (nodes > root_limit) indexable = false;
  if (!indexable) nodes = 0;
  const size_t first_leaf = 1 + nodes;
  std::vector<char> out((first_leaf + n) * size_t(bs), 0);
  auto block = [&](size_t lblk) { return out.data() + lblk * bs; };

  // Leaves, and the index entry of each.
  std::vector<IndexEntry> leaf_index(n);
  for (size_t k = 0; k < n; ++k) {
    size_t from = leaves[k], to = k + 1 < n ? leaves[k + 1] : names.size();
    fill_block(fs, block(first_leaf + k), 0, names, from, to);
    uint32_t h = names[from].hash;
    if (from > 0 && names[from - 1].hash == h) h |= 1;  // a hash run split across leaves
    leaf_index[k] = IndexEntry{h, uint32_t(first_leaf + k)};
  }

  char* root = block(0);
  put_dirent(fs, root, dir, ".", EXT2_FT_DIR, 12);
  put_dirent(fs, root + 12, parent, "..", EXT2_FT_DIR, bs - 12);
  if (indexable) {
    char* info = root + kRootInfoOff;
    info[4] = char(version);
    info[5] = 8;  // info length
    info[6] = char(nodes ? 1 : 0);
    if (!nodes) {
      put_index(root + kRootIndexOff, root_limit, leaf_index.data(), n);
    } else {
      std::vector<IndexEntry> node_index(nodes);
      for (size_t i = 0; i < nodes; ++i) {
        size_t from = i * node_limit, cnt = std::min<size_t>(node_limit, n - from);
        char* node = block(1 + i);
        put_dirent(fs, node, 0, "", 0, bs);
        put_index(node + kNodeIndexOff, node_limit, leaf_index.data() + from, cnt);
        node_index[i] = IndexEntry{leaf_index[from].hash, uint32_t(1 + i)};
      }
      put_index(root + kRootIndexOff, root_limit, node_index.data(), nodes);
    }
  }

  const uint64_t blocks = first_leaf + n;
  OBD_TRY(reshape(fs, dir, b, blocks, indexable));
  for (uint64_t l = 0; l < blocks; ++l) {
    OBD_ASSIGN_OR_RETURN(blk64_t pblk, dir_block_addr(fs, dir, b, l));
    if (!pblk)
      return Status(Code::kEXT4_ERROR, "directory inode " + std::to_string(dir) + " has a hole at block " + std::to_string(l));
    OBD_TRY(write_dir_block(fs, dir, pblk, block(l)));
  }
  return Status::ok();
}

}  // namespace obd::ext4
