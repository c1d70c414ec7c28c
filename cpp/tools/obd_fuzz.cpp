// obd_fuzz: a self-contained mutation fuzzer for the format parsers (no
// libFuzzer; build with -DOBD_ASAN=ON so memory errors abort the run).
//
//   obd_fuzz --target zfile|tar --seconds N --seed S [--max-len B] corpus_files...
//
// Each iteration picks a seed file, applies a few random mutations (bit
// flips, byte sets, truncation, splices, length fields overwritten with
// extreme values), optionally repairs checksums so the mutant reaches the
// deeper checks, and runs the target's parsers and full reads on it. Parser
// errors are expected; only crashes, sanitizer reports and hangs fail the
// run. Exit status 0 means nothing crashed.
//
// Adding a target (e.g. lsmt): write `int fuzz_lsmt(const uint8_t*, size_t)`
// (and optionally seed and repair functions), then add a row to kTargets.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/crc32c.h"
#include "tools/fuzz_lsmt.h"
#include "tools/fuzz_tar_stream.h"
#include "io/file.h"
#include "layer/blob.h"
#include "tar/wrapper.h"
#include "zfile/convert.h"
#include "zfile/reader.h"

using namespace obd;
using Bytes = std::vector<uint8_t>;

namespace {

// Outcome counts per error code, printed at the end to show what was reached.
std::map<std::string, uint64_t> g_outcomes;
void note(const Status& s) { g_outcomes[s.is_ok() ? "OK" : code_name(s.code())]++; }

// Reads up to `budget` bytes of `f` in irregular chunks plus a few random
// ranges; a mutant may claim a huge content size, so reads are capped.
void read_some(File& f, uint64_t budget, uint64_t salt) {
  auto size = f.size();
  if (!size.is_ok()) return note(size.status());
  uint64_t n = std::min<uint64_t>(size.value(), budget);
  Bytes buf(256 * 1024 + 7);
  std::mt19937_64 rng(salt);
  for (uint64_t off = 0; off < n;) {
    size_t len = 1 + rng() % buf.size();
    auto r = f.pread(buf.data(), len, off);
    if (!r.is_ok()) return note(r.status());
    if (r.value() == 0) break;
    off += r.value();
  }
  for (int i = 0; i < 8 && size.value() > 0; i++) {
    uint64_t off = rng() % (size.value() + 100);
    auto r = f.pread(buf.data(), 1 + rng() % 70000, off);
    if (!r.is_ok()) return note(r.status());
  }
  note(Status::ok());
}

FilePtr memory_file(const uint8_t* d, size_t n) { return make_memory_file("mutant", Bytes(d, d + n)); }

// ---------------------------------------------------------------- zfile --

int fuzz_zfile(const uint8_t* d, size_t n) {
  FilePtr f = memory_file(d, n);
  auto z = is_zfile(*f);
  if (!z.is_ok()) note(z.status());
  // The layered open the LSMT code uses: tar, then ZFile.
  if (auto blob = layer::open_blob(f); blob.is_ok()) {
    read_some(*blob.value().content, 8 << 20, n);
  } else {
    note(blob.status());
  }
  // The ZFile parser directly, plus info and verify on the tar payload.
  if (auto r = open_zfile(f); r.is_ok()) read_some(*r.value(), 8 << 20, n + 1);
  if (auto p = layer::open_blob(f, false); p.is_ok()) {
    note(zfile_info(*p.value().payload).status());
    if (n < (2 << 20)) note(zfile_verify(*p.value().payload));
  }
  // The writer on arbitrary bytes must round-trip (small inputs only).
  if (n < (128 << 10) && (n % 7) == 0) {
    ZFileOptions o;
    o.algorithm = (n & 8) ? zfile::Algorithm::kZstd : zfile::Algorithm::kLz4;
    o.block_size = 4096u << (n % 5);
    o.overwrite_header = n & 16;
    FilePtr out = make_memory_file("roundtrip");
    auto w = zfile_compress(*f, out, o);
    if (!w.is_ok()) {
      std::fprintf(stderr, "compress failed: %s\n", w.status().to_string().c_str());
      std::abort();
    }
    auto back = open_zfile(out);
    Bytes got(n);
    if (!back.is_ok() || !back.value()->read_exact(got.data(), n, 0, Code::kEIO, "x").is_ok() ||
        (n > 0 && std::memcmp(got.data(), d, n) != 0)) {
      std::fprintf(stderr, "ZFile round trip of a %zu-byte input failed\n", n);
      std::abort();
    }
  }
  return 0;
}

Bytes compress_bytes(const Bytes& raw, ZFileOptions o, bool tar) {
  FilePtr src = make_memory_file("seed", raw);
  FilePtr out = make_memory_file("seed.zfile");
  FilePtr target = tar ? tar::wrap_begin(out).value() : out;
  auto size = zfile_compress(*src, target, o);
  if (!size.is_ok()) return {};
  if (tar && !tar::wrap_finish(out, size.value(), 0100644).is_ok()) return {};
  Bytes b(out->size().value());
  (void)out->pread(b.data(), b.size(), 0);
  return b;
}

// Small seeds of every flavour, so most iterations are fast.
std::vector<Bytes> zfile_seeds() {
  Bytes raw(20000);
  std::mt19937 rng(1);
  for (size_t i = 0; i < raw.size(); i++) raw[i] = i < 8000 ? uint8_t(rng()) : uint8_t("overlaybd "[i % 10]);
  std::vector<Bytes> out;
  for (auto algo : {zfile::Algorithm::kLz4, zfile::Algorithm::kZstd}) {
    for (uint32_t bs : {4096u, 65536u}) {
      for (int v = 0; v < 4; v++) {
        ZFileOptions o;
        o.algorithm = algo;
        o.block_size = bs;
        o.verify = v & 1;
        o.overwrite_header = v & 2;
        out.push_back(compress_bytes(raw, o, bs == 4096 && v == 3));
      }
    }
  }
  return out;
}

uint32_t le32(const Bytes& b, size_t off) {
  return b[off] | b[off + 1] << 8 | b[off + 2] << 16 | uint32_t(b[off + 3]) << 24;
}
uint64_t le64(const Bytes& b, size_t off) { return le32(b, off) | uint64_t(le32(b, off + 4)) << 32; }
void put32(Bytes& b, size_t off, uint32_t v) {
  for (int i = 0; i < 4; i++) b[off + i] = uint8_t(v >> (8 * i));
}

// Re-signs what checksums protect, so mutated fields get past the digest,
// index CRC and block CRC checks and into the semantic validation.
void repair_zfile_at(Bytes& b, size_t base, size_t len, std::mt19937_64& rng) {
  if (len < 1024 || std::memcmp(b.data() + base, "ZFile", 5) != 0) return;
  size_t tr = base + len - 512;
  auto resign = [&](size_t off) {
    put32(b, off + 28, 0);
    put32(b, off + 28, crc32c_update(0, b.data() + off, 512));
  };
  // Index CRC and (sometimes) block CRCs from the trailer's fields.
  uint64_t io = le64(b, tr + 40), nb = le64(b, tr + 48);
  if (io >= 512 && io < len && nb <= (len - io) / 4) {
    uint32_t crc = crc32c_update(0, b.data() + base + io, nb * 4);
    put32(b, tr + 64, crc);
    if (le64(b, base + 32) & 8) put32(b, base + 64, crc);
    if (b[tr + 88] == 1 && rng() % 2) {
      uint64_t pos = 512;
      for (uint64_t i = 0; i < nb; i++) {
        uint32_t l = le32(b, base + io + 4 * i);
        if (l < 5 || l > io - pos) break;
        put32(b, base + pos + l - 4, crc32c_update(kZFileBlockCrcSeed, b.data() + base + pos, l - 4));
        pos += l;
      }
    }
  }
  resign(base);
  resign(tr);
}

void repair_zfile(Bytes& b, std::mt19937_64& rng) {
  if (b.size() >= 512 && tar::is_ustar_header(b.data())) {
    FilePtr f = make_memory_file("repair", b);
    auto info = tar::probe(*f);
    if (info.is_ok() && info.value().wrapped) {
      repair_zfile_at(b, info.value().payload_offset, info.value().payload_size, rng);
    }
    return;
  }
  repair_zfile_at(b, 0, b.size(), rng);
}

// ------------------------------------------------------------------ tar --

int fuzz_tar(const uint8_t* d, size_t n) {
  FilePtr f = memory_file(d, n);
  auto info = tar::probe(*f);
  note(info.status());
  if (info.is_ok()) {
    FilePtr p = tar::payload_of(f, info.value());
    read_some(*p, 16 << 20, n);
    if (p->size().value() != info.value().payload_size) std::abort();
  }
  if (n < (64 << 10)) {  // wrapping any payload must unwrap to the same bytes
    FilePtr out = make_memory_file("wrapped");
    FilePtr body = tar::wrap_begin(out).value();
    if ((n > 0 && !body->pwrite(d, n, 0).is_ok()) || !tar::wrap_finish(out, n, 0100600).is_ok()) std::abort();
    auto wrapped = tar::probe(*out);
    auto back = wrapped.is_ok() ? Result<FilePtr>(tar::payload_of(out, wrapped.value())) : Result<FilePtr>(wrapped.status());
    Bytes got(n);
    if (!back.is_ok() || back.value()->size().value() != n ||
        !back.value()->read_exact(got.data(), n, 0, Code::kEIO, "x").is_ok() ||
        (n > 0 && std::memcmp(got.data(), d, n) != 0)) {
      std::fprintf(stderr, "tar wrap round trip of %zu bytes failed\n", n);
      std::abort();
    }
  }
  return 0;
}

std::vector<Bytes> tar_seeds() {
  std::vector<Bytes> out;
  for (size_t n : {0, 1, 511, 512, 513, 5000}) {
    Bytes payload(n, 'x');
    FilePtr f = make_memory_file("seed.tar");
    FilePtr body = tar::wrap_begin(f).value();
    if (n > 0) (void)body->pwrite(payload.data(), n, 0);
    (void)tar::wrap_finish(f, n, 0100644);
    Bytes b(f->size().value());
    (void)f->pread(b.data(), b.size(), 0);
    out.push_back(b);
    // The same entry without the pax header: size in the ustar header.
    Bytes plain(b.begin() + 1024, b.end());
    char sz[13];
    std::snprintf(sz, sizeof sz, "%11zo ", n);
    std::memcpy(plain.data() + 124, sz, 12);
    std::memset(plain.data() + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += plain[i];
    std::snprintf(sz, sizeof sz, "%6o ", sum);
    std::memcpy(plain.data() + 148, sz, 7);
    out.push_back(plain);
  }
  return out;
}

void repair_tar(Bytes& b, std::mt19937_64&) {
  for (size_t off : {size_t(0), size_t(1024)}) {
    if (b.size() < off + 512) return;
    std::memset(b.data() + off + 148, ' ', 8);
    unsigned sum = 0;
    for (size_t i = 0; i < 512; i++) sum += b[off + i];
    char s[16];
    std::snprintf(s, sizeof s, "%6o ", sum & 0777777);
    std::memcpy(b.data() + off + 148, s, 7);
    b[off + 155] = 0;
  }
}

// -------------------------------------------------------------- targets --

struct Target {
  const char* name;
  int (*run)(const uint8_t*, size_t);
  std::vector<Bytes> (*seeds)();             // built-in seeds (optional)
  void (*repair)(Bytes&, std::mt19937_64&);  // checksum repair (optional)
};

const Target kTargets[] = {
    {"zfile", fuzz_zfile, zfile_seeds, repair_zfile},
    {"tar", fuzz_tar, tar_seeds, repair_tar},
    {"tar_stream", [](const uint8_t* d, size_t n) { return fuzz::fuzz_tar_stream(d, n, note); },
     fuzz::tar_stream_seeds, fuzz::repair_tar_stream},
    {"lsmt", fuzz_lsmt, nullptr, nullptr},
};

// ------------------------------------------------------------- mutation --

const uint64_t kInteresting[] = {0,          1,          2,          3,           4,          5,
                                 0x7f,       0x80,       0xff,       0x100,       0x1ff,      0x200,
                                 0xfff,      0x1000,     0xffff,     0x10000,     0x10001,    0x7fffffff,
                                 0x80000000, 0xffffffff, 1ull << 32, 1000000000,  1000000001, 1ull << 40,
                                 1ull << 50, 1ull << 62, 1ull << 63, ~0ull >> 1, ~0ull - 1,  ~0ull};

void mutate_once(Bytes& b, const std::vector<Bytes>& corpus, std::mt19937_64& rng, size_t max_len) {
  auto pick_off = [&]() -> size_t {
    if (b.empty()) return 0;
    // Headers and trailers hold the fields worth hitting: favour both ends.
    switch (rng() % 4) {
      case 0: return rng() % std::min<size_t>(b.size(), 2048);
      case 1: return b.size() - 1 - rng() % std::min<size_t>(b.size(), 2048);
      default: return rng() % b.size();
    }
  };
  switch (rng() % 9) {
    case 0:  // bit flip
      if (!b.empty()) b[pick_off()] ^= uint8_t(1u << (rng() % 8));
      break;
    case 1:  // byte set
      if (!b.empty()) b[pick_off()] = uint8_t(kInteresting[rng() % std::size(kInteresting)] + (rng() % 3) - 1);
      break;
    case 2:  // truncation
      if (!b.empty()) b.resize(rng() % b.size());
      break;
    case 3: {  // length field overwrite with an extreme value (u16/u32/u64, LE)
      static const int widths[] = {2, 4, 8};
      int w = widths[rng() % 3];
      if (b.size() < size_t(w)) break;
      size_t off = std::min(pick_off() & ~size_t(rng() % 2 ? 3 : 0), b.size() - w);
      uint64_t v = kInteresting[rng() % std::size(kInteresting)];
      if (rng() % 4 == 0) v = b.size() + (rng() % 1025) - 512;
      for (int i = 0; i < w; i++) b[off + i] = uint8_t(v >> (8 * i));
      break;
    }
    case 4: {  // splice: copy a range of another input over or into this one
      const Bytes& o = corpus[rng() % corpus.size()];
      if (o.empty()) break;
      size_t from = rng() % o.size(), len = 1 + rng() % std::min<size_t>(o.size() - from, 4096);
      size_t at = b.empty() ? 0 : pick_off();
      if (rng() % 2) {
        b.insert(b.begin() + at, o.begin() + from, o.begin() + from + len);
      } else {
        b.resize(std::max(b.size(), at + len));
        std::copy(o.begin() + from, o.begin() + from + len, b.begin() + at);
      }
      break;
    }
    case 5: {  // delete a range
      if (b.size() < 2) break;
      size_t at = pick_off(), len = 1 + rng() % std::min<size_t>(b.size() - at, 1024);
      b.erase(b.begin() + at, b.begin() + std::min(b.size(), at + len));
      break;
    }
    case 6: {  // random bytes over a short range
      if (b.empty()) break;
      size_t at = pick_off(), len = 1 + rng() % 16;
      for (size_t i = at; i < std::min(b.size(), at + len); i++) b[i] = uint8_t(rng());
      break;
    }
    case 7:  // append junk
      for (size_t i = 0, n = 1 + rng() % 600; i < n; i++) b.push_back(uint8_t(rng()));
      break;
    case 8: {  // zero a range (kills a CRC or a whole field)
      if (b.empty()) break;
      size_t at = pick_off(), len = 1 + rng() % 64;
      std::fill(b.begin() + at, b.begin() + std::min(b.size(), at + len), 0);
      break;
    }
  }
  if (b.size() > max_len) b.resize(max_len);
}

// -------------------------------------------------------- crash capture --

const Bytes* g_current = nullptr;
char g_crash_path[512];

void dump_current() {
  if (!g_current) return;
  int fd = ::open(g_crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return;
  size_t off = 0;
  while (off < g_current->size()) {
    ssize_t w = ::write(fd, g_current->data() + off, g_current->size() - off);
    if (w <= 0) break;
    off += size_t(w);
  }
  ::close(fd);
  const char msg[] = "obd_fuzz: crashing input saved to ";
  (void)!::write(2, msg, sizeof msg - 1);
  (void)!::write(2, g_crash_path, std::strlen(g_crash_path));
  (void)!::write(2, "\n", 1);
}

void on_signal(int sig) {
  dump_current();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

}  // namespace

// Present when built with sanitizers: lets us save the input ASan died on.
extern "C" void __sanitizer_set_death_callback(void (*)(void)) __attribute__((weak));

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: obd_fuzz --target NAME --seconds N [--seed S] [--max-len BYTES] [--iterations N]\n"
               "                [--crash-dir DIR] corpus_files...\ntargets:");
  for (const auto& t : kTargets) std::fprintf(stderr, " %s", t.name);
  std::fprintf(stderr, "\n");
  return 2;
}

bool load(const std::string& path, Bytes* out) {
  auto f = open_local(path, OpenMode::kRead);
  if (!f.is_ok()) return false;
  auto size = f.value()->size();
  if (!size.is_ok()) return false;
  out->resize(size.value());
  return f.value()->read_exact(out->data(), out->size(), 0, Code::kEIO, "corpus").is_ok();
}

}  // namespace

int main(int argc, char** argv) {
  std::string target_name, crash_dir = "/tmp";
  double seconds = 10;
  uint64_t seed = 1, max_iters = ~0ull;
  size_t max_len = 4 << 20;
  std::vector<std::string> files;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--target" && (v = val())) target_name = v;
    else if (a == "--seconds" && (v = val())) seconds = std::atof(v);
    else if (a == "--seed" && (v = val())) seed = std::strtoull(v, nullptr, 0);
    else if (a == "--max-len" && (v = val())) max_len = std::strtoull(v, nullptr, 0);
    else if (a == "--iterations" && (v = val())) max_iters = std::strtoull(v, nullptr, 0);
    else if (a == "--crash-dir" && (v = val())) crash_dir = v;
    else if (!a.empty() && a[0] == '-') return usage();
    else files.push_back(a);
  }
  const Target* t = nullptr;
  for (const auto& c : kTargets) {
    if (target_name == c.name) t = &c;
  }
  if (!t) return usage();

  std::vector<Bytes> corpus;
  for (const auto& f : files) {
    Bytes b;
    if (!load(f, &b)) {
      std::fprintf(stderr, "obd_fuzz: cannot read corpus file %s\n", f.c_str());
      return 2;
    }
    corpus.push_back(std::move(b));
  }
  if (t->seeds) {
    for (auto& b : t->seeds()) corpus.push_back(std::move(b));
  }
  if (corpus.empty()) corpus.push_back({});

  std::snprintf(g_crash_path, sizeof g_crash_path, "%s/obd_fuzz-crash-%s-%llu.bin", crash_dir.c_str(), t->name,
                static_cast<unsigned long long>(seed));
  if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(dump_current);
  for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL}) ::signal(sig, on_signal);

  // Watchdog: an iteration that runs for a minute is a hang.
  std::atomic<uint64_t> progress{0};
  std::atomic<bool> done{false};
  std::thread watchdog([&] {
    uint64_t last = ~0ull;
    int stalled = 0;
    while (!done) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      uint64_t p = progress.load();
      stalled = (p == last) ? stalled + 1 : 0;
      last = p;
      if (stalled >= 120) {
        std::fprintf(stderr, "obd_fuzz: iteration %llu hangs\n", static_cast<unsigned long long>(p));
        dump_current();
        std::_Exit(3);
      }
    }
  });

  // Every seed file unmodified first, then mutants until the time is up.
  auto start = std::chrono::steady_clock::now();
  auto deadline = start + std::chrono::duration<double>(seconds);
  uint64_t iters = 0;
  Bytes cur;
  g_current = &cur;
  for (const auto& b : corpus) {
    cur = b;
    t->run(cur.data(), cur.size());
    progress++;
  }
  while (iters < max_iters && std::chrono::steady_clock::now() < deadline) {
    std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + iters);
    cur = corpus[rng() % corpus.size()];
    for (int m = 0, n = 1 + int(rng() % 4); m < n; m++) mutate_once(cur, corpus, rng, max_len);
    if (t->repair && rng() % 2) t->repair(cur, rng);
    t->run(cur.data(), cur.size());
    iters++;
    progress++;
  }
  g_current = nullptr;
  done = true;
  watchdog.join();

  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("obd_fuzz: target %s, seed %llu: %llu mutants in %.1f s, no crash\noutcomes:", t->name,
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(iters), secs);
  for (const auto& [k, v] : g_outcomes) std::printf(" %s=%llu", k.c_str(), static_cast<unsigned long long>(v));
  std::printf("\n");
  return 0;
}
