// bench_lsmt WORKDIR: native figures for `npm run bench`, printed as one JSON
// object. Each figure is paired with a baseline measured in the same run:
//  stack4k_*   4 KiB random reads through a 10-layer stack (plain, LZ4)
//              against pread of a flat file with the same content
//  lookup_*    merged-index lookups/s, 10 layers x 100k entries, one core,
//              against std::lower_bound over the merged segments
//  uring_*     io_uring against pread, single reads and batches of 16
//  commit_*    commit throughput against copying the data file
//  mixed_*     4 threads of 4 KiB random reads while 1 thread writes 4 KiB
//              blocks to the stack's append upper, against the same reads
//              with no writer
// Page caches are warm throughout: this measures CPU cost, not the disk.
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <atomic>
#include <random>
#include <thread>
#include <string>
#include <vector>

#include "image/image.h"
#include "image/stack.h"
#include "layer/ops.h"
#include "io/local_file.h"
#include "lsmt/index.h"
#include "lsmt/rw_layer.h"

using namespace obd;
using Clock = std::chrono::steady_clock;

namespace {

void die(const Status& s, const char* what) {
  std::fprintf(stderr, "bench_lsmt: %s: %s\n", what, s.to_string().c_str());
  std::exit(1);
}
#define CHECK(expr, what)        \
  do {                           \
    Status _s = (expr);          \
    if (!_s.is_ok()) die(_s, what); \
  } while (0)
template <typename T>
T must(Result<T> r, const char* what) {
  if (!r.is_ok()) die(r.status(), what);
  return std::move(r).value();
}

double thread_seconds() {
  timespec ts;
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Runs fn(i) repeatedly for about `budget` seconds; returns calls per second.
template <typename F>
double rate(double budget, F&& fn) {
  uint64_t n = 0;
  auto t0 = Clock::now();
  while (true) {
    for (int k = 0; k < 1024; k++) fn(n++);
    double t = seconds_since(t0);
    if (t >= budget) return double(n) / t;
  }
}

constexpr uint64_t kDevice = 128ull << 20;
constexpr int kLayers = 10;

struct Stacks {
  std::vector<std::string> plain, lz4;
  std::string flat;
};

Stacks build_stacks(const std::string& dir) {
  Stacks s;
  std::mt19937_64 rng(42);
  std::vector<uint8_t> buf(64 << 10);
  for (int i = 0; i < kLayers; i++) {
    std::string base = dir + "/L" + std::to_string(i);
    ::unlink((base + ".data").c_str());
    ::unlink((base + ".index").c_str());
    lsmt::CreateOptions co;
    co.virtual_size = kDevice;
    CHECK(lsmt::create_rw_layer(base + ".data", base + ".index", co), "create layer");
    ImageSpec spec;
    spec.upper = UpperSpec{base + ".data", base + ".index"};
    ImagePtr img = must(open_image(spec), "open layer");
    // Each layer covers about a third of the device with 64 KiB extents.
    for (uint64_t k = 0; k < kDevice / 3 / buf.size(); k++) {
      for (auto& b : buf) b = uint8_t(rng());
      uint64_t off = (rng() % (kDevice / 4096)) * 4096;
      off = std::min(off, kDevice - buf.size());
      CHECK(img->pwrite(buf.data(), buf.size(), off), "write");
    }
    CHECK(img->sync(), "sync");
    img.reset();
    layer::CommitOutput out{base + ".commit", std::nullopt, false, true};
    CHECK(layer::commit_rw_layer(base + ".data", base + ".index", {}, out), "commit");
    out.path = base + ".lz4";
    out.zfile = ZFileOptions{};
    CHECK(layer::commit_rw_layer(base + ".data", base + ".index", {}, out), "commit -z");
    s.plain.push_back(base + ".commit");
    s.lz4.push_back(base + ".lz4");
  }
  // The flat file: the stack's content written out densely.
  ImageSpec spec;
  for (auto& p : s.plain) spec.lowers.push_back({p});
  ImagePtr img = must(open_image(spec), "open stack");
  s.flat = dir + "/flat.img";
  FilePtr flat = must(open_local(s.flat, OpenMode::kCreateTruncate), "create flat");
  std::vector<uint8_t> big(4 << 20);
  for (uint64_t off = 0; off < kDevice; off += big.size()) {
    (void)must(img->pread(big.data(), big.size(), off), "read stack");
    CHECK(flat->pwrite(big.data(), big.size(), off), "write flat");
  }
  return s;
}

// Reads a whole file so the timed loops find it in the page cache.
void warm(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  std::vector<uint8_t> b(4 << 20);
  while (::read(fd, b.data(), b.size()) > 0) {
  }
  ::close(fd);
}

double random_reads(File& f, double budget) {
  std::mt19937_64 rng(7);
  alignas(4096) static uint8_t buf[4096];
  return rate(budget, [&](uint64_t) {
    uint64_t off = (rng() % (kDevice / 4096)) * 4096;
    (void)f.pread(buf, 4096, off);
  });
}

void bench_stack(const Stacks& s, double budget) {
  FilePtr flat = must(open_local(s.flat, OpenMode::kRead), "open flat");
  ImageSpec plain, lz4;
  for (auto& p : s.plain) plain.lowers.push_back({p});
  for (auto& p : s.lz4) lz4.lowers.push_back({p});
  ImagePtr ip = must(open_image(plain), "open plain stack");
  ImagePtr iz = must(open_image(lz4), "open lz4 stack");
  warm(s.flat);
  for (auto& p : s.plain) warm(p);
  for (auto& p : s.lz4) warm(p);
  double base = random_reads(*flat, budget);
  double p = random_reads(*ip, budget);
  double z = random_reads(*iz, budget);
  // The same reads issued straight to the layer files, with the mapping
  // resolved beforehand: what the kernel costs for reading from ten files
  // instead of one, without any of our lookup work.
  std::vector<FilePtr> files;
  for (auto& path : s.plain) files.push_back(must(open_local(path, OpenMode::kRead), "open layer"));
  auto stack = std::static_pointer_cast<StackImage>(ip);
  struct Direct { File* f; uint64_t off; };
  std::vector<Direct> plan;
  std::mt19937_64 rng(7);
  for (int i = 0; i < (1 << 18); i++) {
    uint64_t lba = (rng() % (kDevice / 4096)) * 8;
    Direct d{nullptr, 0};
    stack->merged_index().lookup(lba, 8, [&](const lsmt::Segment& seg) {
      if (!d.f && !seg.zeroed && seg.offset == lba) d = {files[files.size() - 1 - seg.tag].get(), seg.moffset * 512};
    });
    if (d.f) plan.push_back(d);
  }
  plan.resize(size_t(1) << (63 - __builtin_clzll(plan.size())));  // a power of two for the mask
  alignas(4096) static uint8_t buf[4096];
  double direct = rate(budget, [&](uint64_t i) {
    const Direct& d = plan[i & (plan.size() - 1)];
    (void)d.f->pread(buf, 4096, d.off);
  });
  std::printf("\"stack4k_pread_flat_per_s\": %.0f, \"stack4k_pread_layers_direct_per_s\": %.0f, "
              "\"stack4k_plain_per_s\": %.0f, \"stack4k_lz4_per_s\": %.0f, "
              "\"stack4k_plain_ratio\": %.3f, \"stack4k_lz4_ratio\": %.3f, \"stack4k_plain_vs_direct\": %.3f, ",
              base, direct, p, z, p / base, z / base, p / direct);
}

void bench_lookup(double budget) {
  std::mt19937_64 rng(3);
  const uint64_t space = 1ull << 32;  // sectors (2 TiB device)
  std::vector<lsmt::RoIndex> layers;
  for (int l = 0; l < kLayers; l++) {
    std::vector<uint64_t> starts(100000);
    for (auto& x : starts) x = rng() % space;
    std::sort(starts.begin(), starts.end());
    std::vector<lsmt::Segment> segs;
    uint64_t end = 0;
    for (uint64_t x : starts) {
      if (x < end) continue;
      uint32_t len = 1 + uint32_t(rng() % 1024);
      segs.push_back({x, len, 8 + x, false, 0});
      end = x + len;
    }
    layers.emplace_back(std::move(segs));
  }
  std::vector<const lsmt::RoIndex*> ptrs;
  for (auto& l : layers) ptrs.push_back(&l);
  lsmt::RoIndex merged = must(lsmt::merge_indexes(ptrs), "merge");
  std::vector<uint64_t> probes(1 << 20);
  for (auto& p : probes) p = rng() % space;
  uint64_t sink = 0;
  const auto& segs = merged.segments();
  auto tree = [&](uint64_t lba) {
    merged.lookup(lba, 8, [&](const lsmt::Segment& s) { sink += s.moffset; });
  };
  auto lower_bound = [&](uint64_t lba) {
    auto it = std::lower_bound(segs.begin(), segs.end(), lba,
                               [](const lsmt::Segment& s, uint64_t v) { return s.end() <= v; });
    for (; it != segs.end() && it->offset < lba + 8; ++it) sink += it->moffset;
  };
  // The machine may be shared: both loops run in alternating slices of the
  // same probes, timed in this thread's CPU time, so a pause or a noisy
  // neighbour weighs on both alike.
  double t_tree = 0, t_lb = 0;
  uint64_t n = 0;
  constexpr size_t kSlice = 1 << 14;
  for (size_t round = 0; t_tree + t_lb < 2 * budget; round++) {
    size_t from = (round * kSlice) & (probes.size() - 1);
    for (int k = 0; k < 2; k++) {
      bool first_tree = (round + k) % 2 == 0;
      double t0 = thread_seconds();
      for (size_t i = from; i < from + kSlice; i++) first_tree ? tree(probes[i]) : lower_bound(probes[i]);
      (first_tree ? t_tree : t_lb) += thread_seconds() - t0;
    }
    n += kSlice;
  }
  std::printf("\"lookup_merged_entries\": %zu, \"lookup_isa\": \"%s\", \"lookup_per_s\": %.0f, "
              "\"lookup_std_lower_bound_per_s\": %.0f, \"lookup_ratio_vs_lower_bound\": %.3f, \"lookup_sink\": %llu, ",
              merged.size(), lsmt::search_isa_name(lsmt::best_search_isa()), double(n) / t_tree, double(n) / t_lb,
              t_lb / t_tree, (unsigned long long)(sink & 1));
}

void bench_uring(const std::string& flat_path, double budget) {
  FilePtr ps = must(open_local(flat_path, OpenMode::kRead, IoEngine::kPsync), "open psync");
  FilePtr ur = must(open_local(flat_path, OpenMode::kRead, IoEngine::kIoUring), "open io_uring");
  bool have_uring = io_uring_available();
  double single_p = random_reads(*ps, budget), single_u = random_reads(*ur, budget);
  std::vector<std::vector<uint8_t>> bufs(16, std::vector<uint8_t>(4096));
  auto batch = [&](File& f) {
    std::mt19937_64 rng(9);
    std::vector<ReadReq> reqs(16);
    return 16 * rate(budget, [&](uint64_t) {
      for (int k = 0; k < 16; k++) reqs[k] = {bufs[k].data(), 4096, (rng() % (kDevice / 4096)) * 4096};
      (void)f.pread_batch(reqs);
    });
  };
  double batch_p = batch(*ps), batch_u = batch(*ur);
  std::printf("\"uring_available\": %s, \"uring_single_per_s\": %.0f, \"pread_single_per_s\": %.0f, "
              "\"uring_single_ratio\": %.3f, \"uring_batch16_per_s\": %.0f, \"pread_batch16_per_s\": %.0f, "
              "\"uring_batch16_ratio\": %.3f, ",
              have_uring ? "true" : "false", single_u, single_p, single_u / single_p, batch_u, batch_p,
              batch_u / batch_p);
}

void bench_commit(const std::string& dir) {
  std::string data = dir + "/C.data", index = dir + "/C.index", out = dir + "/C.commit";
  ::unlink(data.c_str());
  ::unlink(index.c_str());
  lsmt::CreateOptions co;
  co.virtual_size = 1ull << 30;
  CHECK(lsmt::create_rw_layer(data, index, co), "create");
  {
    ImageSpec spec;
    spec.upper = UpperSpec{data, index};
    ImagePtr img = must(open_image(spec), "open");
    std::vector<uint8_t> buf(1 << 20);
    std::mt19937_64 rng(5);
    for (auto& b : buf) b = uint8_t(rng());
    for (uint64_t off = 0; off < (256ull << 20); off += buf.size()) CHECK(img->pwrite(buf.data(), buf.size(), off), "w");
    CHECK(img->sync(), "sync");
  }
  auto copy = [&]() {
    ::unlink((dir + "/C.copy").c_str());  // a fresh file, as commit writes one
    int in = ::open(data.c_str(), O_RDONLY), o = ::open((dir + "/C.copy").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<uint8_t> b(4 << 20);
    ssize_t n;
    while ((n = ::read(in, b.data(), b.size())) > 0) (void)!::write(o, b.data(), size_t(n));
    ::fdatasync(o);
    ::close(in);
    ::close(o);
  };
  copy();  // warm
  auto t0 = Clock::now();
  copy();
  double tcopy = seconds_since(t0);
  t0 = Clock::now();
  ::unlink(out.c_str());
  CHECK(layer::commit_rw_layer(data, index, {}, layer::CommitOutput{out, std::nullopt, false, true}), "commit");
  double tcommit = seconds_since(t0);
  double mb = 256.0;
  std::printf("\"commit_mb_per_s\": %.1f, \"copy_mb_per_s\": %.1f, \"commit_ratio\": %.3f",
              mb / tcommit, mb / tcopy, tcopy / tcommit);
}

// Reads/s of `threads` readers over the image for `budget` seconds while
// `write` (if set) runs in a loop on one more thread.
template <typename W>
double parallel_reads(Image& img, int threads, double budget, W&& write, uint64_t* writes) {
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; t++) {
    ts.emplace_back([&, t] {
      std::mt19937_64 rng(100 + t);
      alignas(4096) uint8_t buf[4096];
      uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        uint64_t off = (rng() % (kDevice / 4096)) * 4096;
        CHECK(img.pread(buf, 4096, off).status(), "mixed read");
        n++;
      }
      reads += n;
    });
  }
  uint64_t w = 0;
  std::thread writer([&] {
    while (!stop.load(std::memory_order_relaxed) && write(w)) w++;
  });
  auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(budget));
  stop = true;
  double t = seconds_since(t0);
  for (auto& th : ts) th.join();
  writer.join();
  if (writes) *writes = w;
  return double(reads.load()) / t;
}

void bench_mixed(const Stacks& s, const std::string& dir, double budget) {
  std::string data = dir + "/M.data", index = dir + "/M.index";
  ::unlink(data.c_str());
  ::unlink(index.c_str());
  lsmt::CreateOptions co;
  co.virtual_size = kDevice;
  CHECK(lsmt::create_rw_layer(data, index, co), "create upper");
  ImageSpec spec;
  for (auto& p : s.plain) spec.lowers.push_back({p});
  spec.upper = UpperSpec{data, index};
  ImagePtr img = must(open_image(spec), "open stack with upper");
  for (auto& p : s.plain) warm(p);
  std::mt19937_64 rng(11);
  alignas(4096) static uint8_t wbuf[4096];
  for (auto& b : wbuf) b = uint8_t(rng());
  // The upper grows by every write; stop writing at 1 GiB to bound the disk used.
  const uint64_t max_writes = (1ull << 30) / 4096;
  auto write = [&](uint64_t i) {
    if (i >= max_writes) return false;
    uint64_t off = (rng() % (kDevice / 4096)) * 4096;
    CHECK(img->pwrite(wbuf, 4096, off), "mixed write");
    return true;
  };
  double alone = parallel_reads(*img, 4, budget, [](uint64_t) { return false; }, nullptr);
  uint64_t writes = 0;
  double mixed = parallel_reads(*img, 4, budget, write, &writes);
  std::printf("\"mixed_4readers_alone_per_s\": %.0f, \"mixed_4readers_1writer_per_s\": %.0f, "
              "\"mixed_writes_per_s\": %.0f, \"mixed_ratio\": %.3f, ",
              alone, mixed, double(writes) / budget, mixed / alone);
  img.reset();
  ::unlink(data.c_str());
  ::unlink(index.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_lsmt WORKDIR [SECONDS_PER_FIGURE] [lookup]\n");
    return 2;
  }
  std::string dir = argv[1];
  double budget = argc > 2 ? std::atof(argv[2]) : 1.0;
  if (argc > 3 && std::string(argv[3]) == "lookup") {  // the lookup figure alone, for quick runs
    std::printf("{");
    bench_lookup(budget);
    std::printf("\"only\": \"lookup\"}\n");
    return 0;
  }
  Stacks s = build_stacks(dir);
  std::printf("{");
  bench_stack(s, budget);
  bench_lookup(budget);
  bench_uring(s.flat, budget);
  bench_mixed(s, dir, budget);
  bench_commit(dir);
  std::printf("}\n");
  return 0;
}
