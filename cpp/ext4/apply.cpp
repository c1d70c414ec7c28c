#include "ext4/apply.h"

#include <chrono>
#include <cstdint>
#include <unordered_set>

#include "archive/readahead_stream.h"
#include "archive/tar_reader.h"
#include "ext4/file_data.h"
#include "ext4/inode.h"
#include "ext4/path.h"
#include "ext4/tree.h"
#include "ext4/xattr.h"

namespace obd::ext4 {

namespace {

constexpr size_t kMaxName = 255;  // ext4's limit for one path component
constexpr uint16_t kMaxFileLinks = 65000;
const std::string kWhiteout = ".wh.";
const std::string kOpaque = ".wh..wh..opq";
const std::string kWhiteoutMeta = ".wh..wh.";  // aufs bookkeeping: skipped

std::string join(const std::string& a, const std::string& b) { return a.empty() ? b : a + "/" + b; }

// containerd's bounds (archive.boundTime): an mtime before the epoch, or
// past what a 64-bit count of nanoseconds holds (2262), becomes the epoch.
constexpr int64_t kMaxTimeSec = INT64_MAX / 1000000000;
constexpr uint32_t kMaxTimeNsec = uint32_t(INT64_MAX % 1000000000);

Meta meta_of(const TarEntry& e) {
  Meta m{e.mode & 07777, e.uid, e.gid, e.mtime_sec, e.mtime_nsec};
  if (m.mtime_sec < 0 || m.mtime_sec > kMaxTimeSec || (m.mtime_sec == kMaxTimeSec && m.mtime_nsec > kMaxTimeNsec)) {
    m.mtime_sec = 0;
    m.mtime_nsec = 0;
  }
  return m;
}

class Applier {
 public:
  Applier(const Fs& fs, TarReader& tar, const ApplyOptions& o, ApplyResult* r)
      : fs_(fs), tree_(fs), data_(fs), tar_(tar), opts_(o), res_(r) {}

  Status run();
  // Progress (sent at most every progress_ms unless `done`) and the input
  // counters in the result.
  void report(bool done);

 private:
  Status apply(const TarEntry& e);
  Status whiteout(const std::string& parent, const std::string& name);
  Status opaque(const std::string& parent);
  Result<Child> ensure_dir(const Resolved& r, const std::string& what);
  Status remove(ext2_ino_t dir, const std::string& name, const Child& c);
  Status create(ext2_ino_t parent, const std::string& base, const TarEntry& e);
  Status create_file(ext2_ino_t parent, const std::string& base, const TarEntry& e);
  Status hardlink(ext2_ino_t parent, const std::string& base, const TarEntry& e);
  // How a header's xattrs meet the inode's: added to them, replacing them
  // (a directory given again), or added after a chown (a hard link's header).
  enum class XattrMode { kAdd, kReplace, kAfterChown };
  Status update_meta(ext2_ino_t ino, const TarEntry& e, XattrMode xm = XattrMode::kAdd);
  Status link_new(ext2_ino_t parent, const std::string& base, ext2_ino_t ino, InodeBuf& b);

  const Fs& fs_;
  Tree tree_;
  DataWriter data_;
  TarReader& tar_;
  const ApplyOptions& opts_;
  ApplyResult* res_;
  // Resolved paths this layer created or updated: an opaque marker keeps
  // these and removes everything else below its directory.
  std::unordered_set<std::string> unpacked_;
  std::chrono::steady_clock::time_point last_report_ = std::chrono::steady_clock::now();
};

void Applier::report(bool done) {
  res_->tar_bytes = tar_.offset();
  res_->input_bytes = tar_.consumed();
  if (!opts_.on_progress) return;
  auto now = std::chrono::steady_clock::now();
  if (!done && now - last_report_ < std::chrono::milliseconds(opts_.progress_ms)) return;
  last_report_ = now;
  ApplyProgress p;
  p.input_bytes = res_->input_bytes;
  p.tar_bytes = res_->tar_bytes;
  p.entries = res_->entries;
  p.done = done;
  opts_.on_progress(p);
}

Status Applier::run() {
  TarEntry e;
  for (;;) {
    OBD_ASSIGN_OR_RETURN(bool more, tar_.next(&e));
    if (!more) break;
    Status s = apply(e);
    if (!s.is_ok()) {
      return Status(s.code(), "applying \"" + e.path + "\" (" + tar_type_name(e.type) + ", entry " +
                                  std::to_string(res_->entries + 1) + "): " + s.message());
    }
    ++res_->entries;
    report(false);
  }
  // Large directories this layer changed get their hash index back.
  return tree_.finish();
}

Status Applier::apply(const TarEntry& e) {
  if (e.path.empty()) {
    // "./": the root directory's own metadata.
    if (e.type == TarEntry::Type::kDir) return update_meta(EXT2_ROOT_INO, e);
    return Status::ok();
  }
  size_t slash = e.path.rfind('/');
  std::string parent = slash == std::string::npos ? "" : e.path.substr(0, slash);
  std::string base = slash == std::string::npos ? e.path : e.path.substr(slash + 1);
  if (base.compare(0, kWhiteout.size(), kWhiteout) == 0) {
    ++res_->whiteouts;
    if (base == kOpaque) return opaque(parent);
    if (base.compare(0, kWhiteoutMeta.size(), kWhiteoutMeta) == 0) return Status::ok();
    return whiteout(parent, base.substr(kWhiteout.size()));
  }
  if (base.size() > kMaxName)
    return Status(Code::kTAR_BAD_HEADER, "name longer than " + std::to_string(kMaxName) + " bytes");
  OBD_ASSIGN_OR_RETURN(Resolved pr, resolve_path(fs_, tree_, parent, true));
  OBD_ASSIGN_OR_RETURN(Child dir, ensure_dir(pr, parent));
  std::string key = join(pr.key(), base);
  if (e.type == TarEntry::Type::kHardLink) {
    OBD_TRY(hardlink(dir.ino, base, e));
    unpacked_.insert(key);
    return Status::ok();
  }
  OBD_ASSIGN_OR_RETURN(const Child* existing, tree_.lookup(dir.ino, base));
  if (existing) {
    if (existing->is_dir() && e.type == TarEntry::Type::kDir) {
      // An existing directory stays (with its contents); its metadata and
      // xattrs become the header's, as in containerd's tree, where the layer
      // makes the directory anew in its own upper directory.
      OBD_TRY(update_meta(existing->ino, e, XattrMode::kReplace));
      unpacked_.insert(key);
      return Status::ok();
    }
    Child old = *existing;
    OBD_TRY(remove(dir.ino, base, old));
  }
  OBD_TRY(create(dir.ino, base, e));
  unpacked_.insert(key);
  return Status::ok();
}

Status Applier::whiteout(const std::string& parent, const std::string& name) {
  if (name.empty() || name == "." || name == "..") return Status::ok();
  OBD_ASSIGN_OR_RETURN(Resolved pr, resolve_path(fs_, tree_, parent, true));
  if (!pr.exists() || !pr.leaf().is_dir()) return Status::ok();  // nothing there to hide
  OBD_ASSIGN_OR_RETURN(const Child* c, tree_.lookup(pr.leaf().ino, name));
  if (!c) return Status::ok();
  Child victim = *c;
  return remove(pr.leaf().ino, name, victim);
}

Status Applier::opaque(const std::string& parent) {
  OBD_ASSIGN_OR_RETURN(Resolved pr, resolve_path(fs_, tree_, parent, true));
  if (!pr.exists() || !pr.leaf().is_dir()) return Status::ok();
  // Walk the directory; whatever this layer did not write is from below.
  std::vector<std::pair<ext2_ino_t, std::string>> todo{{pr.leaf().ino, pr.key()}};
  while (!todo.empty()) {
    auto [dir, key] = todo.back();
    todo.pop_back();
    OBD_ASSIGN_OR_RETURN(auto kids, tree_.children(dir));
    for (const auto& [name, c] : kids) {
      std::string k = join(key, name);
      if (!unpacked_.count(k)) {
        OBD_TRY(remove(dir, name, c));
      } else if (c.is_dir()) {
        todo.emplace_back(c.ino, k);
      }
    }
  }
  return Status::ok();
}

Result<Child> Applier::ensure_dir(const Resolved& r, const std::string& what) {
  if (r.blocked) return Status(Code::kTAR_BAD_HEADER, "a component of \"" + what + "\" is not a directory");
  Child cur = r.leaf();
  if (r.found.size() == r.comps.size()) {
    if (!cur.is_dir()) return Status(Code::kTAR_BAD_HEADER, "\"" + what + "\" is not a directory");
    return cur;
  }
  // Missing parents are created as containerd does: 0755, root-owned.
  Meta m{0755, 0, 0, int64_t(fs_.get()->now), 0};
  std::string key;
  for (size_t i = 0; i < r.comps.size(); ++i) {
    key = join(key, r.comps[i]);
    if (i < r.found.size()) continue;
    if (r.comps[i].size() > kMaxName) return Status(Code::kTAR_BAD_HEADER, "name longer than 255 bytes");
    InodeBuf b(fs_);
    OBD_ASSIGN_OR_RETURN(ext2_ino_t ino, new_inode(fs_, cur.ino, LINUX_S_IFDIR, m, b));
    Status s = init_dir_body(fs_, ino, cur.ino, b);
    if (!s.is_ok()) {
      abandon_inode(fs_, ino, b);
      return s;
    }
    OBD_TRY(link_new(cur.ino, r.comps[i], ino, b));
    OBD_TRY(adjust_dir_links(fs_, cur.ino, +1));
    ++res_->dirs;
    unpacked_.insert(key);
    cur = Child{ino, EXT2_FT_DIR};
  }
  return cur;
}

// Writes a fresh inode and enters it in `parent`; frees it if that fails.
Status Applier::link_new(ext2_ino_t parent, const std::string& base, ext2_ino_t ino, InodeBuf& b) {
  Status w = write_inode(fs_, ino, b);
  if (!w.is_ok()) {
    abandon_inode(fs_, ino, b);
    return w;
  }
  Status s = tree_.link(parent, base, Child{ino, ftype_of_mode(b.large()->i_mode)});
  if (!s.is_ok()) {
    (void)drop_link(fs_, ino);
    return s;
  }
  return Status::ok();
}

Status Applier::remove(ext2_ino_t dir, const std::string& name, const Child& c) {
  // Depth-first without recursion: hostile layers can nest very deep.
  struct Frame {
    ext2_ino_t dir;
    std::string name;
    Child c;
    bool expanded;
  };
  std::vector<Frame> stack{{dir, name, c, false}};
  while (!stack.empty()) {
    if (stack.back().c.is_dir() && !stack.back().expanded) {
      stack.back().expanded = true;
      ext2_ino_t d = stack.back().c.ino;
      OBD_ASSIGN_OR_RETURN(auto kids, tree_.children(d));
      for (auto& [n, k] : kids) stack.push_back({d, n, k, false});
      continue;
    }
    Frame f = std::move(stack.back());
    stack.pop_back();
    OBD_TRY(tree_.unlink(f.dir, f.name));
    if (f.c.is_dir()) {
      OBD_TRY(adjust_dir_links(fs_, f.dir, -1));
      tree_.forget(f.c.ino);
    }
    OBD_TRY(drop_link(fs_, f.c.ino));
  }
  return Status::ok();
}

Status Applier::update_meta(ext2_ino_t ino, const TarEntry& e, XattrMode xm) {
  InodeBuf b(fs_);
  OBD_TRY(read_inode(fs_, ino, b));
  apply_meta(b, meta_of(e));
  OBD_TRY(write_inode(fs_, ino, b));
  switch (xm) {
    case XattrMode::kReplace: return replace_xattrs(fs_, ino, e.xattrs);
    case XattrMode::kAfterChown: return set_xattrs_after_chown(fs_, ino, e.xattrs);
    default: return set_xattrs(fs_, ino, e.xattrs);
  }
}

Status Applier::create(ext2_ino_t parent, const std::string& base, const TarEntry& e) {
  using T = TarEntry::Type;
  if (e.type == T::kFile) return create_file(parent, base, e);
  uint32_t type;
  switch (e.type) {
    case T::kDir: type = LINUX_S_IFDIR; break;
    case T::kSymlink: type = LINUX_S_IFLNK; break;
    case T::kCharDev: type = LINUX_S_IFCHR; break;
    case T::kBlockDev: type = LINUX_S_IFBLK; break;
    case T::kFifo: type = LINUX_S_IFIFO; break;
    default: return Status(Code::kTAR_BAD_HEADER, "unsupported entry type");
  }
  InodeBuf b(fs_);
  OBD_ASSIGN_OR_RETURN(ext2_ino_t ino, new_inode(fs_, parent, type, meta_of(e), b));
  Status s;
  if (e.type == T::kDir) {
    s = init_dir_body(fs_, ino, parent, b);
  } else if (e.type == T::kSymlink) {
    b.large()->i_mode = LINUX_S_IFLNK | 0777;
    s = init_symlink_body(fs_, ino, b, e.link);
  } else if (e.type == T::kCharDev || e.type == T::kBlockDev) {
    set_rdev(b, e.devmajor, e.devminor);
  }
  if (!s.is_ok()) {
    abandon_inode(fs_, ino, b);
    return s;
  }
  OBD_TRY(link_new(parent, base, ino, b));
  if (e.type == T::kDir) {
    OBD_TRY(adjust_dir_links(fs_, parent, +1));
    ++res_->dirs;
  } else if (e.type == T::kSymlink) {
    ++res_->symlinks;
  } else {
    ++res_->specials;
  }
  return set_xattrs(fs_, ino, e.xattrs);
}

Status Applier::create_file(ext2_ino_t parent, const std::string& base, const TarEntry& e) {
  InodeBuf b(fs_);
  OBD_ASSIGN_OR_RETURN(ext2_ino_t ino, new_inode(fs_, parent, LINUX_S_IFREG, meta_of(e), b));
  OBD_TRY(link_new(parent, base, ino, b));
  Status s = data_.write(ino, b, tar_, e);
  if (s.is_ok()) s = write_inode(fs_, ino, b);
  if (!s.is_ok()) {
    // Leave no half-written file behind: take it out again.
    (void)write_inode(fs_, ino, b);
    Status rs = remove(parent, base, Child{ino, EXT2_FT_REG_FILE});
    if (!rs.is_ok()) return Status(s.code(), s.message() + " (removing the partial file failed too: " + rs.message() + ")");
    return s;
  }
  ++res_->files;
  return set_xattrs(fs_, ino, e.xattrs);
}

Status Applier::hardlink(ext2_ino_t parent, const std::string& base, const TarEntry& e) {
  // As containerd: the new name is cleared first, then the target resolved
  // (its last component not followed: a link to a symlink links the symlink).
  OBD_ASSIGN_OR_RETURN(const Child* existing, tree_.lookup(parent, base));
  OBD_ASSIGN_OR_RETURN(Resolved tr, resolve_path(fs_, tree_, e.link, false));
  if (existing && tr.exists() && !tr.comps.empty() && tr.leaf().ino == existing->ino) {
    // Already the same inode under this name: only the metadata changes.
    return update_meta(existing->ino, e, XattrMode::kAfterChown);
  }
  if (existing) {
    Child old = *existing;
    OBD_TRY(remove(parent, base, old));
    OBD_ASSIGN_OR_RETURN(tr, resolve_path(fs_, tree_, e.link, false));
  }
  if (!tr.exists() || tr.comps.empty())
    return Status(Code::kENOENT, "hard link target \"" + e.link + "\" does not exist");
  Child t = tr.leaf();
  if (t.is_dir()) return Status(Code::kTAR_BAD_HEADER, "hard link to directory \"" + e.link + "\"");
  InodeBuf b(fs_);
  OBD_TRY(read_inode(fs_, t.ino, b));
  if (b.large()->i_links_count >= kMaxFileLinks)
    return Status(Code::kTAR_BAD_HEADER, "too many hard links to \"" + e.link + "\"");
  b.large()->i_links_count++;
  // containerd chowns, chmods and chtimes the new name: the shared inode.
  apply_meta(b, meta_of(e));
  // The count first: a failed link then only needs it taken back.
  OBD_TRY(write_inode(fs_, t.ino, b));
  Status ls = tree_.link(parent, base, t);
  if (!ls.is_ok()) {
    (void)drop_link(fs_, t.ino);
    return ls;
  }
  ++res_->hardlinks;
  // containerd chowns the new name before setting its xattrs, and the
  // kernel's chown drops the shared inode's capability.
  return set_xattrs_after_chown(fs_, t.ino, e.xattrs);
}

}  // namespace

Result<ApplyResult> apply_layer(FilePtr dev, ByteStreamPtr input, const ApplyOptions& opts) {
  if (opts.mkfs) {
    MkfsOptions mo = opts.mkfs_opts;
    mo.fs = opts.fs;
    mo.fs.sync = false;  // the apply syncs once at the end
    OBD_TRY(mkfs(dev, mo));
  }
  OBD_ASSIGN_OR_RETURN(ByteStreamPtr stream, make_decompressing_stream(std::move(input)));
  // Reading, inflating and hashing the layer on a second core while this
  // one parses and applies it.
  OBD_ASSIGN_OR_RETURN(auto tar, TarReader::open(make_readahead_stream(std::move(stream))));
  OBD_ASSIGN_OR_RETURN(auto fs, Fs::open(dev, opts.fs));
  ApplyResult res;
  Applier applier(*fs, *tar, opts, &res);
  Status s = applier.run();
  // Written back either way: what was applied stays, consistently.
  Status c = fs->close();
  res.io = fs->stats();
  if (!s.is_ok()) return s;
  if (!c.is_ok()) return c;
  // Done only once the write-back (and sync) is.
  applier.report(true);
  return res;
}

Result<ApplyResult> apply_layer(FilePtr dev, const std::string& input, const ApplyOptions& opts) {
  OBD_ASSIGN_OR_RETURN(ByteStreamPtr in, open_path_stream(input));
  return apply_layer(std::move(dev), std::move(in), opts);
}

}  // namespace obd::ext4
