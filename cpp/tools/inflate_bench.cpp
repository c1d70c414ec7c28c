// inflate_bench FILE.gz: gunzip speed of zlib and (when built with ISA-L)
// igzip on one gzip file held in memory, output discarded. Prints one JSON
// line: {"bytesIn", "bytesOut", "zlibMBps", "igzipMBps"} (MB/s of output).
// Run by hand on the bookworm layer blob to choose the inflater.
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <vector>
#ifdef OBD_HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif

namespace {

constexpr size_t kOut = 1 << 20;

// Bytes out, or -1 on a decode error. Concatenated members are decoded in turn.
long long zlib_gunzip(const std::vector<unsigned char>& in) {
  std::vector<unsigned char> out(kOut);
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 32) != Z_OK) return -1;
  zs.next_in = const_cast<unsigned char*>(in.data());
  zs.avail_in = uInt(in.size());
  long long total = 0;
  for (;;) {
    zs.next_out = out.data();
    zs.avail_out = uInt(out.size());
    int r = inflate(&zs, Z_NO_FLUSH);
    total += (long long)(out.size() - zs.avail_out);
    if (r == Z_STREAM_END) {
      if (zs.avail_in == 0) break;
      inflateReset(&zs);
    } else if (r != Z_OK) {
      total = -1;
      break;
    }
  }
  inflateEnd(&zs);
  return total;
}

#ifdef OBD_HAVE_ISAL
long long igzip_gunzip(const std::vector<unsigned char>& in) {
  std::vector<unsigned char> out(kOut);
  inflate_state st;
  isal_inflate_init(&st);
  st.crc_flag = ISAL_GZIP;
  st.next_in = const_cast<unsigned char*>(in.data());
  st.avail_in = uint32_t(in.size());
  long long total = 0;
  for (;;) {
    st.next_out = out.data();
    st.avail_out = uint32_t(out.size());
    int r = isal_inflate(&st);
    total += (long long)(out.size() - st.avail_out);
    if (r != ISAL_DECOMP_OK) return -1;
    if (st.block_state == ISAL_BLOCK_FINISH) {
      if (st.avail_in == 0) break;
      uint8_t* next = st.next_in;
      uint32_t avail = st.avail_in;
      isal_inflate_reset(&st);
      st.crc_flag = ISAL_GZIP;
      st.next_in = next;
      st.avail_in = avail;
    }
  }
  return total;
}
#endif

template <class F>
double mbps(F f, const std::vector<unsigned char>& in, long long* out) {
  double best = 0;
  for (int i = 0; i < 3; i++) {
    auto t0 = std::chrono::steady_clock::now();
    *out = f(in);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (*out < 0) return -1;
    best = std::max(best, double(*out) / 1e6 / s);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: inflate_bench FILE.gz\n");
    return 2;
  }
  std::ifstream f(argv[1], std::ios::binary);
  std::vector<unsigned char> in((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (in.empty()) {
    std::fprintf(stderr, "inflate_bench: %s: empty or unreadable\n", argv[1]);
    return 1;
  }
  long long out = 0, out2 = 0;
  double z = mbps(zlib_gunzip, in, &out);
  double ig = -1;
#ifdef OBD_HAVE_ISAL
  ig = mbps(igzip_gunzip, in, &out2);
  if (out2 != out) ig = -1;
#endif
  char igs[32] = "null";
  if (ig >= 0) std::snprintf(igs, sizeof igs, "%.1f", ig);
  std::printf("{\"bytesIn\":%zu,\"bytesOut\":%lld,\"zlibMBps\":%.1f,\"igzipMBps\":%s}\n", in.size(), out, z, igs);
  return z < 0 ? 1 : 0;
}
