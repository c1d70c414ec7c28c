#include "trace/prefetch.h"

#include <ext2fs/ext2fs.h>

#include <unordered_set>

#include "ext4/fs.h"
#include "ext4/inode.h"
#include "ext4/path.h"
#include "ext4/tree.h"

namespace obd::trace {

PrefetchStats replay(std::span<const Record> records, const std::vector<FilePtr>& layers, unsigned concurrency,
                     const std::atomic<bool>* cancel) {
  std::vector<ReadJob> jobs;
  uint64_t skipped = 0;
  for (const Record& r : records) {
    if (r.op != kOpRead) continue;
    if (r.layer >= layers.size() || !layers[r.layer] || r.offset < 0) {
      skipped++;
      continue;
    }
    if (r.count > 0) jobs.push_back({layers[r.layer].get(), uint64_t(r.offset), r.count});
  }
  PrefetchStats st = read_jobs(jobs, concurrency, cancel);
  st.errors += skipped;
  return st;
}

namespace {

// Collects data blocks as device byte ranges, merging a block into the
// previous range when it continues it.
class RangeList {
 public:
  explicit RangeList(uint64_t block_size) : bs_(block_size) {}
  void add_block(blk64_t pblk) {
    uint64_t off = pblk * bs_;
    if (!v_.empty() && v_.back().off + v_.back().len == off)
      v_.back().len += bs_;
    else
      v_.push_back({off, bs_});
  }
  std::vector<Extent> take() { return std::move(v_); }

 private:
  uint64_t bs_;
  std::vector<Extent> v_;
};

struct BlockCtx {
  RangeList* out;
  uint64_t nblocks;    // logical blocks covered by i_size
  uint64_t fs_blocks;  // blocks of the filesystem
  bool bad = false;
};

int block_cb(ext2_filsys, blk64_t* blocknr, e2_blkcnt_t blockcnt, blk64_t, int, void* priv) {
  auto* c = static_cast<BlockCtx*>(priv);
  if (blockcnt < 0 || uint64_t(blockcnt) >= c->nblocks) return 0;  // past EOF (preallocated)
  if (*blocknr == 0) return 0;
  if (*blocknr >= c->fs_blocks) {
    c->bad = true;
    return BLOCK_ABORT;
  }
  c->out->add_block(*blocknr);
  return 0;
}

// Data blocks of regular file `ino` (extent or block mapped; inline data
// has none outside the inode).
Status add_file(const ext4::Fs& fs, ext2_ino_t ino, RangeList& out) {
  ext4::InodeBuf b(fs);
  OBD_TRY(ext4::read_inode(fs, ino, b));
  ext2_inode* in = b.small();
  if (in->i_flags & EXT4_INLINE_DATA_FL) return Status::ok();
  ext2_filsys f = fs.get();
  const uint64_t bs = f->blocksize;
  BlockCtx ctx{&out, (EXT2_I_SIZE(in) + bs - 1) / bs, ext2fs_blocks_count(f->super)};
  errcode_t err = ext2fs_block_iterate3(f, ino, BLOCK_FLAG_READ_ONLY | BLOCK_FLAG_DATA_ONLY, nullptr, block_cb, &ctx);
  if (err) return fs.error(err, "mapping the data blocks of inode " + std::to_string(ino));
  if (ctx.bad)
    return Status(Code::kEXT4_ERROR, "inode " + std::to_string(ino) + " maps blocks outside the filesystem");
  return Status::ok();
}

// Regular files under directory `dir`, depth first in name order; each
// directory is listed once even if a damaged filesystem links it twice.
Status add_tree(ext4::Tree& tree, ext2_ino_t dir, std::vector<ext2_ino_t>& files) {
  std::unordered_set<ext2_ino_t> seen{dir};
  std::vector<ext2_ino_t> stack{dir};
  while (!stack.empty()) {
    ext2_ino_t d = stack.back();
    stack.pop_back();
    OBD_ASSIGN_OR_RETURN(auto kids, tree.children(d));
    // Pushed in reverse so the first name is listed first.
    for (auto it = kids.rbegin(); it != kids.rend(); ++it) {
      const ext4::Child& c = it->second;
      if (c.is_dir() && seen.insert(c.ino).second) stack.push_back(c.ino);
    }
    for (const auto& [name, c] : kids)
      if (c.ftype == EXT2_FT_REG_FILE) files.push_back(c.ino);
  }
  return Status::ok();
}

}  // namespace

Result<std::vector<Extent>> file_ranges(FilePtr image, std::span<const std::string> paths, uint64_t* errors) {
  ext4::FsOptions opts;
  opts.channel.cache_bytes = 8u << 20;  // metadata only; the data is read by the caller
  opts.sync = false;
  OBD_ASSIGN_OR_RETURN(std::unique_ptr<ext4::Fs> fs, ext4::Fs::open_read_only(image, opts));
  ext4::Tree tree(*fs);
  std::vector<ext2_ino_t> files;
  for (const std::string& p : paths) {
    std::string path = p;
    bool tree_wanted = false;
    while (!path.empty() && (path.back() == '*' || path.back() == '/')) {
      tree_wanted = true;
      path.pop_back();
    }
    Result<ext4::Resolved> r = ext4::resolve_path(*fs, tree, path, true);
    if (!r.is_ok() || !r->exists()) {
      (*errors)++;
      continue;
    }
    ext4::Child leaf = r->leaf();
    if (leaf.is_dir()) {
      if (!add_tree(tree, leaf.ino, files).is_ok()) (*errors)++;  // keeps the files found so far
    } else if (tree_wanted) {
      (*errors)++;  // "x/" but x is no directory
    } else if (leaf.ftype == EXT2_FT_REG_FILE) {
      files.push_back(leaf.ino);
    }
  }
  RangeList out(fs->get()->blocksize);
  std::unordered_set<ext2_ino_t> done;
  for (ext2_ino_t ino : files)
    if (done.insert(ino).second && !add_file(*fs, ino, out).is_ok()) (*errors)++;
  return out.take();
}

Result<PrefetchStats> prefetch_paths(FilePtr image, std::span<const std::string> paths, unsigned concurrency,
                                     const std::atomic<bool>* cancel) {
  uint64_t errors = 0;
  OBD_ASSIGN_OR_RETURN(std::vector<Extent> ranges, file_ranges(image, paths, &errors));
  std::vector<ReadJob> jobs;
  jobs.reserve(ranges.size());
  for (const Extent& e : ranges) jobs.push_back({image.get(), e.off, e.len});
  PrefetchStats st = read_jobs(jobs, concurrency, cancel);
  st.errors += errors;
  return st;
}

}  // namespace obd::trace
