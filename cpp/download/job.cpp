#include "download/job.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "download/sha256.h"
#include "layer/pending_file.h"

namespace obd::download {
namespace {

const uint64_t kFetchTarget = 4 << 20;
const uint64_t kMaxBlockSize = 64 << 20;

Status stopped(const std::string& what) { return Status(Code::kCLOSED, what + ": download stopped"); }

Result<bool> exists(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) return true;
  if (errno == ENOENT) return false;
  return Status::from_errno(errno, "stat " + path);
}

// A well-formed OCI sha256 digest, lowercase hex as registries write it.
bool is_sha256(const std::string& d) {
  if (d.size() != 7 + 64 || d.compare(0, 7, "sha256:") != 0) return false;
  return std::all_of(d.begin() + 7, d.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// Switches the layer to `path` after checking it has the blob's size (a
// different file there would return wrong bytes).
Status use_local(const DownloadJob& job, const std::string& path, IoEngine engine, bool* final) {
  OBD_ASSIGN_OR_RETURN(FilePtr f, open_local(path, OpenMode::kRead, engine));
  OBD_ASSIGN_OR_RETURN(uint64_t size, f->size());
  if (size != job.size) {
    *final = true;
    return Status(Code::kEINVAL, path + ": holds " + std::to_string(size) + " bytes but blob " + job.digest +
                                     " has " + std::to_string(job.size) + "; not switching to it");
  }
  if (job.target) job.target->switch_to(std::move(f));
  return Status::ok();
}

Result<FilePtr> open_partial(const std::string& path) {
  auto f = open_local(path, OpenMode::kReadWrite);
  if (f.is_ok() || f.status().code() != Code::kENOENT) return f;
  return open_local(path, OpenMode::kCreateExclusive);
}

// Blocks of [0, size) that `extents` cover whole: written by an earlier run.
// A block only partly allocated (a write cut short) is fetched again.
std::vector<bool> whole_blocks(const std::vector<Extent>& extents, uint64_t size, uint64_t bs) {
  std::vector<bool> have((size + bs - 1) / bs, false);
  for (const Extent& e : extents) {
    uint64_t end = std::min(e.off + e.len, size);
    for (uint64_t b = (e.off + bs - 1) / bs; b < have.size() && std::min((b + 1) * bs, size) <= end; b++)
      have[b] = true;
  }
  return have;
}

// Fetches the blocks `out` lacks from the source, several per request, and
// writes them one block at a time (the unit a later run resumes from).
Status fetch_missing(const DownloadJob& job, const DownloadOptions& opts, JobControl& ctl, File& out,
                     uint64_t* reused) {
  const uint64_t bs = opts.block_size, size = job.size;
  OBD_ASSIGN_OR_RETURN(auto extents, out.data_extents(0));
  std::vector<bool> have = whole_blocks(extents, size, bs);
  uint64_t done = 0;
  for (uint64_t b = 0; b < have.size(); b++)
    if (have[b]) done += std::min((b + 1) * bs, size) - b * bs;
  *reused = done;
  ctl.progress(done);
  const uint64_t per_req = fetch_bytes(opts) / bs;
  std::vector<uint8_t> buf(std::min(per_req * bs, have.size() * bs));
  for (uint64_t b = 0; b < have.size();) {
    if (have[b]) {
      b++;
      continue;
    }
    uint64_t e = b + 1;
    while (e < have.size() && !have[e] && e - b < per_req) e++;
    uint64_t off = b * bs, len = std::min(e * bs, size) - off;
    if (!ctl.proceed() || !ctl.throttle(len)) return stopped(job.digest);
    OBD_TRY(job.source->read_exact(buf.data(), len, off, Code::kEIO, "blob data"));
    for (uint64_t x = 0; x < len; x += bs) OBD_TRY(out.pwrite(buf.data() + x, std::min(bs, len - x), off + x));
    done += len;
    ctl.progress(done);
    b = e;
  }
  return Status::ok();
}

}  // namespace

uint64_t fetch_bytes(const DownloadOptions& opts) {
  uint64_t want = kFetchTarget;
  if (opts.max_mbps) want = std::min<uint64_t>(want, uint64_t(opts.max_mbps) << 20);
  return std::max<uint64_t>(1, want / opts.block_size) * opts.block_size;
}

Status run_attempt(const DownloadJob& job, const DownloadOptions& opts, JobControl& ctl, bool* final,
                   std::string* how) {
  *final = false;
  const std::string commit = job.dir + "/overlaybd.commit", partial = job.dir + "/.download";
  OBD_ASSIGN_OR_RETURN(bool have_commit, exists(commit));
  if (have_commit) {
    *how = "using the existing " + commit;
    return use_local(job, commit, opts.engine, final);
  }
  if (!is_sha256(job.digest) || !job.source || opts.block_size == 0 || opts.block_size > kMaxBlockSize) {
    *final = true;
    if (!is_sha256(job.digest))
      return Status(Code::kENOTSUP, "layer digest '" + job.digest + "': only sha256:<64 lowercase hex> is checked");
    if (!job.source) return Status(Code::kEINVAL, commit + ": missing, and the layer has no source to fetch");
    return Status(Code::kEINVAL, "download block size " + std::to_string(opts.block_size) +
                                     ": must be 1 byte to 64 MiB");
  }
  OBD_ASSIGN_OR_RETURN(uint64_t src_size, job.source->size());
  if (src_size != job.size) {
    *final = true;
    return Status(Code::kEINVAL, job.source->name() + ": " + std::to_string(src_size) + " bytes, but blob " +
                                     job.digest + " has " + std::to_string(job.size));
  }

  OBD_ASSIGN_OR_RETURN(FilePtr out, open_partial(partial));
  // Two processes serving the same layer directory must not interleave writes.
  OBD_TRY(out->try_lock(true).with_context("another download of " + job.digest + " is running"));
  OBD_ASSIGN_OR_RETURN(uint64_t have_size, out->size());
  if (have_size != job.size) OBD_TRY(out->truncate(job.size));
  uint64_t reused = 0;
  OBD_TRY(fetch_missing(job, opts, ctl, *out, &reused));
  OBD_TRY(out->sync());

  OBD_ASSIGN_OR_RETURN(std::string got, sha256_digest(*out, fetch_bytes(opts), [&] { return ctl.proceed(); }));
  if (got != job.digest) {
    ::unlink(partial.c_str());
    std::string msg = "digest mismatch: expected " + job.digest + ", got " + got + " (" + job.source->name() +
                      " fetched into " + partial + ")";
    // Blocks kept from an earlier run may be what is wrong: fetch it all once more.
    if (reused) msg += "; " + std::to_string(reused) + " bytes were from an earlier run, fetching all again";
    *final = reused == 0;
    return Status(Code::kEIO, msg);
  }
  // Never replace a commit file another process published meanwhile; ours is then redundant.
  Status s = layer::rename_no_replace(partial, commit);
  if (s.code() == Code::kEEXIST) {
    ::unlink(partial.c_str());
  } else if (!s) {
    return s;
  }
  *how = "downloaded into " + commit;
  return use_local(job, commit, opts.engine, final);
}

}  // namespace obd::download
