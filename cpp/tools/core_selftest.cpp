// core_selftest CHECK [DIR]: native checks of the read and write paths that a
// JavaScript test cannot observe. Prints "core_selftest CHECK: ok" on success.
//  zfile-batch  a ZFile batch reads and decompresses each block once,
//               whatever the requests share (counted at the source file)
//  rw-race DIR  8 threads write racing 4 KiB-aligned blocks (and discards)
//               to an append and a sparse upper while 2 threads read: an
//               append read never sees a block before its data landed; a reopen
//               resolves every raced LBA to the same write as memory did
//  uring-wait   an io_uring wait that fails with anything but EINTR returns
//               EIO instead of spinning
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "image/image.h"
#include "io/local_file.h"
#include "lsmt/rw_layer.h"
#include "zfile/reader.h"
#include "zfile/writer.h"

using namespace obd;

namespace {

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "core_selftest: %s\n", what.c_str());
  std::_Exit(1);
}
void check(const Status& s, const std::string& what) {
  if (!s.is_ok()) fail(what + ": " + s.to_string());
}
template <typename T>
T must(Result<T> r, const std::string& what) {
  if (!r.is_ok()) fail(what + ": " + r.status().to_string());
  return std::move(r).value();
}

// Counts the bytes read from the file it wraps (pread_batch goes through pread).
class CountingFile final : public File {
 public:
  explicit CountingFile(FilePtr inner) : inner_(std::move(inner)) {}
  const std::string& name() const override { return inner_->name(); }
  Result<uint64_t> size() override { return inner_->size(); }
  Result<size_t> pread(void* buf, size_t len, uint64_t off) override {
    auto r = inner_->pread(buf, len, off);
    if (r.is_ok()) bytes += *r;
    return r;
  }
  std::atomic<uint64_t> bytes{0};

 private:
  FilePtr inner_;
};

int zfile_batch() {
  const uint32_t bs = 4096;
  const uint64_t nblocks = 64;
  std::vector<uint8_t> raw(nblocks * bs - 1000);  // a partial last block
  std::mt19937_64 rng(1);
  for (size_t i = 0; i < raw.size(); i++) raw[i] = uint8_t(i % 251 < 200 ? i / 64 : rng());
  FilePtr mem = make_memory_file("batch.zfile");
  auto w = must(ZFileWriter::create(mem, ZFileOptions{}), "create writer");
  check(w->append(raw.data(), raw.size()), "append");
  check(w->finish(), "finish");
  auto counting = std::make_shared<CountingFile>(mem);
  FilePtr zf = must(open_zfile(counting), "open_zfile");
  // Each block's stored length, measured by reading one byte of it alone.
  std::vector<uint64_t> stored(nblocks);
  uint8_t one;
  for (uint64_t b = 0; b < nblocks; b++) {
    counting->bytes = 0;
    (void)must(zf->pread(&one, 1, b * bs), "single read");
    stored[b] = counting->bytes;
  }
  auto run = [&](std::vector<std::pair<uint64_t, size_t>> ranges, const char* what) {
    std::vector<std::vector<uint8_t>> bufs;
    std::vector<ReadReq> reqs;
    std::set<uint64_t> blocks;
    for (auto [off, len] : ranges) bufs.emplace_back(len, 0xee);
    for (size_t i = 0; i < ranges.size(); i++) {
      auto [off, len] = ranges[i];
      reqs.push_back({bufs[i].data(), len, off});
      for (uint64_t b = off / bs; off < raw.size() && b * bs < std::min<uint64_t>(off + len, raw.size()); b++)
        blocks.insert(b);
    }
    counting->bytes = 0;
    check(zf->pread_batch(reqs), what);
    uint64_t want = 0;
    for (uint64_t b : blocks) want += stored[b];
    if (counting->bytes != want)
      fail(std::string(what) + ": read " + std::to_string(counting->bytes) + " stored bytes, each needed block once is " +
           std::to_string(want));
    for (size_t i = 0; i < reqs.size(); i++) {
      uint64_t off = ranges[i].first;
      size_t n = off >= raw.size() ? 0 : std::min<uint64_t>(ranges[i].second, raw.size() - off);
      if (reqs[i].done != n) fail(std::string(what) + ": request " + std::to_string(i) + " done " + std::to_string(reqs[i].done));
      if (n && std::memcmp(bufs[i].data(), raw.data() + off, n) != 0)
        fail(std::string(what) + ": request " + std::to_string(i) + " read wrong bytes");
    }
  };
  // Pieces of one stack read: neighbours sharing blocks 0 and 1, a duplicate,
  // a whole block wanted twice, and a range past the end.
  run({{0, 1000}, {1000, bs + 100}, {bs + 100, 2 * bs}, {0, 1000}, {10 * bs, bs}, {10 * bs + 512, 512},
       {raw.size() - 10, 100}, {raw.size() + 5, 10}},
      "shared blocks");
  for (int round = 0; round < 500; round++) {
    std::vector<std::pair<uint64_t, size_t>> ranges;
    int n = 2 + int(rng() % 12);
    for (int i = 0; i < n; i++) {
      uint64_t off = rng() % (raw.size() + 100);
      ranges.push_back({off, 1 + size_t(rng() % (3 * bs))});
    }
    run(ranges, "random batch");
  }
  // Wider than one window of stored bytes (4 MiB): still each block once.
  std::vector<uint8_t> big(16 << 20);
  for (size_t i = 0; i < big.size(); i++) big[i] = uint8_t(rng());
  FilePtr mem2 = make_memory_file("big.zfile");
  auto w2 = must(ZFileWriter::create(mem2, ZFileOptions{}), "create writer");
  check(w2->append(big.data(), big.size()), "append");
  check(w2->finish(), "finish");
  auto c2 = std::make_shared<CountingFile>(mem2);
  FilePtr z2 = must(open_zfile(c2), "open big");
  std::vector<uint8_t> a(big.size()), b(big.size());
  std::vector<ReadReq> reqs{{a.data(), a.size(), 0}, {b.data(), b.size(), 0}};
  uint64_t file_size = must(mem2->size(), "size");
  c2->bytes = 0;
  check(z2->pread_batch(reqs), "big batch");
  if (a != big || b != big) fail("big batch read wrong bytes");
  if (c2->bytes >= file_size) fail("big batch read " + std::to_string(c2->bytes) + " bytes of a " + std::to_string(file_size) + "-byte file");
  std::printf("core_selftest zfile-batch: ok\n");
  return 0;
}

// Every 4 KiB block of a write carries (writer, seq, block) in each of its
// 8-byte words, so a reader can tell a whole block from a torn or early one.
void stamp(uint8_t* p, uint64_t writer, uint64_t seq, uint64_t block) {
  uint64_t v = writer << 56 | seq << 20 | block;
  for (size_t k = 0; k < 4096; k += 8) std::memcpy(p + k, &v, 8);
}
bool whole(const uint8_t* p, uint64_t block) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  if (v == 0) {
    for (size_t k = 0; k < 4096; k++)
      if (p[k]) return false;
    return true;
  }
  if ((v & 0xfffff) != block) return false;
  for (size_t k = 8; k < 4096; k += 8)
    if (std::memcmp(p + k, &v, 8) != 0) return false;
  return true;
}

void rw_race(const std::string& dir, bool sparse) {
  const uint64_t blocks = 64;
  std::string data = dir + (sparse ? "/race-sparse.data" : "/race.data");
  std::string index = dir + (sparse ? "/race-sparse.index" : "/race.index");
  ::unlink(data.c_str());
  ::unlink(index.c_str());
  lsmt::CreateOptions co;
  co.virtual_size = blocks * 4096;
  co.sparse = sparse;
  check(lsmt::create_rw_layer(data, index, co), "create");
  ImageSpec spec;
  spec.upper = UpperSpec{data, index};
  ImagePtr img = must(open_image(spec), "open");
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> torn{0}, reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; t++) {
    readers.emplace_back([&, t] {
      std::mt19937_64 rng(50 + t);
      std::vector<uint8_t> buf(4 * 4096);
      while (!stop) {
        uint64_t b = rng() % (blocks - 3);
        check(img->pread(buf.data(), buf.size(), b * 4096).status(), "race read");
        // Sparse data is overwritten in place, so only append reads must be whole.
        for (uint64_t k = 0; k < 4 && !sparse; k++)
          if (!whole(buf.data() + k * 4096, b + k)) torn++;
        reads++;
      }
    });
  }
  std::vector<std::thread> writers;
  for (uint64_t t = 0; t < 8; t++) {
    writers.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      std::vector<uint8_t> buf(8 * 4096);
      for (uint64_t seq = 1; seq <= 1500; seq++) {
        uint64_t n = 1 + rng() % 8, b = rng() % (blocks - n + 1);
        if (rng() % 16 == 0) {
          check(img->punch_hole(b * 4096, n * 4096), "race discard");
          continue;
        }
        for (uint64_t k = 0; k < n; k++) stamp(buf.data() + k * 4096, t + 1, seq, b + k);
        check(img->pwrite(buf.data(), n * 4096, b * 4096), "race write");
      }
    });
  }
  for (auto& w : writers) w.join();
  stop = true;
  for (auto& r : readers) r.join();
  if (torn) fail(std::string(sparse ? "sparse" : "append") + ": " + std::to_string(torn.load()) + " torn blocks in " + std::to_string(reads.load()) + " reads");
  std::vector<uint8_t> before(blocks * 4096), after(blocks * 4096);
  (void)must(img->pread(before.data(), before.size(), 0), "read all");
  check(img->sync(), "sync");
  img.reset();
  img = must(open_image(spec), "reopen");
  (void)must(img->pread(after.data(), after.size(), 0), "read all after reopen");
  for (uint64_t b = 0; b < blocks; b++) {
    if (std::memcmp(before.data() + b * 4096, after.data() + b * 4096, 4096) != 0)
      fail(std::string(sparse ? "sparse" : "append") + ": block " + std::to_string(b) + " differs after reopen");
  }
}

int rw_race_all(const std::string& dir) {
  rw_race(dir, false);
  rw_race(dir, true);
  std::printf("core_selftest rw-race: ok\n");
  return 0;
}

void on_signal(int) {}

// Drives a real failure: a thread waits for a read of an empty pipe; its
// ring's descriptor is replaced by /dev/null and the wait interrupted, so
// the next io_uring_enter fails with EOPNOTSUPP.
int uring_wait() {
  if (!io_uring_available()) {
    std::printf("core_selftest uring-wait: skipped (no io_uring)\n");
    return 0;
  }
  struct sigaction sa {};
  sa.sa_handler = on_signal;  // no SA_RESTART: the wait returns EINTR
  sigaction(SIGUSR1, &sa, nullptr);
  int p[2];
  if (::pipe(p) != 0) fail("pipe");
  auto f = std::make_shared<UringFile>(p[0], "test-pipe");
  std::atomic<pid_t> tid{0};
  std::atomic<bool> finished{false};
  Status result;
  std::thread t([&] {
    tid = pid_t(::syscall(SYS_gettid));
    char buf[16];
    ReadReq r{buf, sizeof buf, 0};
    result = f->pread_batch(std::span<ReadReq>(&r, 1));
    finished = true;
  });
  // Wait until the thread sleeps in io_uring_enter (426 on x86-64 and arm64).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  bool waiting = false;
  while (!waiting && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (finished) fail("uring-wait: the read of an empty pipe returned: " + result.to_string());
    if (!tid) continue;
    std::string task = "/proc/self/task/" + std::to_string(tid.load());
    std::ifstream sc(task + "/syscall"), st(task + "/stat");
    std::string nr, stat;
    sc >> nr;
    std::getline(st, stat);
    size_t paren = stat.rfind(')');
    waiting = nr == "426" && paren != std::string::npos && stat.size() > paren + 2 && stat[paren + 2] == 'S';
  }
  if (!waiting) fail("uring-wait: the reader never slept in io_uring_enter");
  int ring_fd = -1;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d)) {
      char target[256];
      std::string link = std::string("/proc/self/fd/") + e->d_name;
      ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
      if (n > 0 && std::string(target, size_t(n)) == "anon_inode:[io_uring]") ring_fd = std::atoi(e->d_name);
    }
    ::closedir(d);
  }
  if (ring_fd < 0) fail("uring-wait: no io_uring descriptor found");
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull < 0 || ::dup2(devnull, ring_fd) < 0) fail("uring-wait: dup2");
  ::close(devnull);
  ::pthread_kill(t.native_handle(), SIGUSR1);
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!finished && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (!finished) fail("uring-wait: the wait loop did not return after its ring failed (spinning)");
  t.join();
  if (result.code() != Code::kEIO) fail("uring-wait: want EIO, got " + result.to_string());
  ::close(p[1]);
  std::printf("core_selftest uring-wait: ok (%s)\n", result.message().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string what = argc > 1 ? argv[1] : "";
  if (what == "zfile-batch") return zfile_batch();
  if (what == "rw-race" && argc > 2) return rw_race_all(argv[2]);
  if (what == "uring-wait") return uring_wait();
  std::fprintf(stderr, "usage: core_selftest zfile-batch | rw-race DIR | uring-wait\n");
  return 2;
}
