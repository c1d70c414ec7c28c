#include "ext4/io_manager.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "ext4/page_cache.h"

namespace obd::ext4 {

namespace {

struct Entry {
  FilePtr file;
  ChannelOptions opts;
};

std::mutex g_mu;
std::map<std::string, Entry>& registry() {
  static std::map<std::string, Entry> r;
  return r;
}

constexpr errcode_t kChannelMagic = 0x0bdc4a11;

// The channel's private data.
struct Channel {
  errcode_t magic = kChannelMagic;
  PageCache cache;
  bool writable;
  bool discard_on_close = false;  // drop dirty pages instead of writing them
  Status last_error;
  Channel(FilePtr f, const ChannelOptions& o, bool rw)
      : cache(std::move(f), o.cache_bytes / PageCache::kPage, o.skip_unchanged), writable(rw) {}
};

Channel* chan(io_channel ch) {
  if (!ch || !ch->private_data) return nullptr;
  auto* c = static_cast<Channel*>(ch->private_data);
  return c->magic == kChannelMagic ? c : nullptr;
}

// Records `s` on the channel and turns it into an errcode for libext2fs.
errcode_t fail(Channel* c, const Status& s, errcode_t fallback) {
  c->last_error = s;
  if (s.code() == Code::kENOSPC) return ENOSPC;
  if (s.code() == Code::kEROFS) return EXT2_ET_RO_FILSYS;
  return fallback;
}

// count > 0 is a number of blocks; count < 0 is -count bytes.
uint64_t span_bytes(io_channel ch, int count) {
  return count < 0 ? uint64_t(-int64_t(count)) : uint64_t(count) * uint64_t(ch->block_size);
}

errcode_t ch_open(const char* name, int flags, io_channel* out) {
  if (!name || !out) return EXT2_ET_BAD_DEVICE_NAME;
  Entry e;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    auto it = registry().find(name);
    if (it == registry().end()) return EXT2_ET_BAD_DEVICE_NAME;
    e = it->second;
  }
  auto* io = static_cast<io_channel>(calloc(1, sizeof(struct struct_io_channel)));
  if (!io) return EXT2_ET_NO_MEMORY;
  io->magic = EXT2_ET_MAGIC_IO_CHANNEL;
  io->manager = file_io_manager();
  io->name = strdup(name);
  io->block_size = 1024;
  io->refcount = 1;
  // Discarded ranges read back as zeros (File::punch_hole's contract).
  io->flags = CHANNEL_FLAGS_DISCARD_ZEROES;
  io->private_data = new Channel(e.file, e.opts, (flags & IO_FLAG_RW) != 0);
  *out = io;
  return 0;
}

errcode_t ch_close(io_channel ch) {
  if (--ch->refcount > 0) return 0;
  errcode_t rc = 0;
  if (Channel* c = chan(ch)) {
    if (!c->discard_on_close) {
      Status s = c->cache.flush();
      if (!s.is_ok()) rc = fail(c, s, EXT2_ET_SHORT_WRITE);
    }
    delete c;
  }
  free(ch->name);
  free(ch);
  return rc;
}

errcode_t ch_set_blksize(io_channel ch, int blksize) {
  if (blksize <= 0) return EXT2_ET_INVALID_ARGUMENT;
  // The cache works in device pages, so nothing to drop here.
  ch->block_size = blksize;
  return 0;
}

// The steps every data call shares: our channel, the read-only check for
// writes, and the failed Status turned into an errcode.
template <typename Op>
errcode_t cache_op(io_channel ch, bool writes, errcode_t fallback, Op op) {
  Channel* c = chan(ch);
  if (!c) return EXT2_ET_MAGIC_IO_CHANNEL;
  if (writes && !c->writable) return EXT2_ET_RO_FILSYS;
  Status s = op(c->cache);
  return s.is_ok() ? 0 : fail(c, s, fallback);
}

errcode_t ch_read64(io_channel ch, unsigned long long block, int count, void* buf) {
  return cache_op(ch, false, EXT2_ET_SHORT_READ, [&](PageCache& pc) {
    return pc.read(block * uint64_t(ch->block_size), span_bytes(ch, count), buf);
  });
}

errcode_t ch_write64(io_channel ch, unsigned long long block, int count, const void* buf) {
  return cache_op(ch, true, EXT2_ET_SHORT_WRITE, [&](PageCache& pc) {
    return pc.write(block * uint64_t(ch->block_size), span_bytes(ch, count), buf);
  });
}

errcode_t ch_read(io_channel ch, unsigned long block, int count, void* buf) {
  return ch_read64(ch, block, count, buf);
}

errcode_t ch_write(io_channel ch, unsigned long block, int count, const void* buf) {
  return ch_write64(ch, block, count, buf);
}

errcode_t ch_write_byte(io_channel ch, unsigned long offset, int size, const void* buf) {
  if (size < 0) return EXT2_ET_INVALID_ARGUMENT;
  return cache_op(ch, true, EXT2_ET_SHORT_WRITE, [&](PageCache& pc) { return pc.write(offset, size_t(size), buf); });
}

errcode_t ch_flush(io_channel ch) {
  // Durability (File::sync) is the caller's decision, once at the end.
  return cache_op(ch, false, EXT2_ET_SHORT_WRITE, [](PageCache& pc) { return pc.flush(); });
}

errcode_t ch_discard(io_channel ch, unsigned long long block, unsigned long long count) {
  uint64_t bs = uint64_t(ch->block_size);
  return cache_op(ch, true, EXT2_ET_UNIMPLEMENTED, [&](PageCache& pc) { return pc.discard(block * bs, count * bs); });
}

// Zeroing below this goes through the cache as zero pages (where the device
// already reads as zeros they are skipped at flush); larger ranges are
// punched out of the File. The cache's own threshold for direct transfers,
// so small zeroing never bypasses it.
constexpr uint64_t kZeroPunchBytes = 64u << 10;

Status write_zeros(PageCache& pc, uint64_t off, uint64_t len) {
  static const std::vector<uint8_t> zeros(1u << 20);
  for (uint64_t end = off + len; off < end;) {
    size_t n = size_t(std::min<uint64_t>(zeros.size(), end - off));
    OBD_TRY(pc.write(off, n, zeros.data()));
    off += n;
  }
  return Status::ok();
}

errcode_t ch_zeroout(io_channel ch, unsigned long long block, unsigned long long count) {
  uint64_t bs = uint64_t(ch->block_size);
  return cache_op(ch, true, EXT2_ET_SHORT_WRITE, [&](PageCache& pc) {
    uint64_t off = block * bs, len = count * bs;
    if (len >= kZeroPunchBytes && pc.discard(off, len).is_ok()) return Status::ok();
    // Small, or a File that cannot punch holes: real zeros.
    return write_zeros(pc, off, len);
  });
}

errcode_t ch_readahead(io_channel, unsigned long long, unsigned long long) { return 0; }

errcode_t ch_set_option(io_channel, const char*, const char*) { return EXT2_ET_INVALID_ARGUMENT; }

struct struct_io_manager g_manager = {
    EXT2_ET_MAGIC_IO_MANAGER,
    "obd::File I/O manager",
    ch_open,
    ch_close,
    ch_set_blksize,
    ch_read,
    ch_write,
    ch_flush,
    ch_write_byte,
    ch_set_option,
    nullptr,  // get_stats: none, so s_kbytes_written stays deterministic
    ch_read64,
    ch_write64,
    ch_discard,
    ch_readahead,
    ch_zeroout,
    {},
};

std::atomic<uint64_t> g_next_id{1};

}  // namespace

FileRegistration::FileRegistration(FilePtr file, ChannelOptions opts) {
  name_ = "obdfile:" + std::to_string(g_next_id++);
  std::lock_guard<std::mutex> lk(g_mu);
  registry()[name_] = Entry{std::move(file), opts};
}

FileRegistration::~FileRegistration() {
  std::lock_guard<std::mutex> lk(g_mu);
  registry().erase(name_);
}

io_manager file_io_manager() { return &g_manager; }

Status take_channel_error(io_channel ch) {
  Channel* c = chan(ch);
  if (!c) return Status::ok();
  Status s = c->last_error;
  c->last_error = Status::ok();
  return s;
}

Status channel_write_data(io_channel ch, uint64_t off, const void* buf, size_t len) {
  Channel* c = chan(ch);
  if (!c) return Status(Code::kINTERNAL, "not an obd::File channel");
  if (!c->writable) return Status(Code::kEROFS, "ext4 channel is read-only");
  return c->cache.write_fresh(off, len, buf);
}

void channel_discard_on_close(io_channel ch) {
  if (Channel* c = chan(ch)) c->discard_on_close = true;
}

ChannelStats channel_stats(io_channel ch) {
  ChannelStats st;
  if (Channel* c = chan(ch)) {
    st.bytes_read = c->cache.bytes_read;
    st.bytes_written = c->cache.bytes_written;
    st.cache_hits = c->cache.hits;
    st.cache_misses = c->cache.misses;
    st.pages_skipped = c->cache.skipped;
  }
  return st;
}

}  // namespace obd::ext4
