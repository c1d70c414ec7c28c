// device_selftest WORKDIR: drives the BlockDevice adapter from several
// submitting threads (disjoint regions, random reads/writes/discards with
// multi-buffer requests) against a flat model; checks every completion runs
// once and the device reads back the model after drain and after reopen.
#include <atomic>
#include <cstdio>
#include <cstring>
#include <future>
#include <random>
#include <thread>
#include <vector>

#include "device/block_device.h"
#include "lsmt/rw_layer.h"

using namespace obd;

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  std::string dir = argv[1];
  const uint64_t kSize = 32ull << 20;
  std::string data = dir + "/dev.data", index = dir + "/dev.index";
  lsmt::CreateOptions co;
  co.virtual_size = kSize;
  if (auto s = lsmt::create_rw_layer(data, index, co); !s) {
    std::fprintf(stderr, "%s\n", s.to_string().c_str());
    return 1;
  }
  ImageSpec spec;
  spec.upper = UpperSpec{data, index};
  auto img = open_image(spec);
  if (!img) return 1;
  auto dev = make_image_device(img.value(), 4);
  std::vector<uint8_t> model(kSize, 0);
  std::atomic<int> completions{0}, failures{0};
  const int kThreads = 4, kOps = 2000;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; t++) {
    ts.emplace_back([&, t] {
      std::mt19937_64 rng(t + 1);
      uint64_t base = kSize / kThreads * t, span = kSize / kThreads;
      for (int i = 0; i < kOps; i++) {
        uint64_t len = 512 * (1 + rng() % 64), off = base + 512 * (rng() % ((span - len) / 512));
        int kind = int(rng() % 4);
        std::vector<uint8_t> buf(len);
        // Split the buffer into up to three iovecs.
        size_t cut1 = 512 * (rng() % (len / 512 + 1)), cut2 = cut1 + (len - cut1) / 2;
        std::vector<iovec> iov;
        for (auto [a, b] : {std::pair{size_t(0), cut1}, {cut1, cut2}, {cut2, size_t(len)}})
          if (b > a) iov.push_back({buf.data() + a, b - a});
        IoRequest req{kind == 0 ? IoOp::kRead : kind == 3 ? IoOp::kDiscard : IoOp::kWrite, off, len, iov};
        if (req.op == IoOp::kWrite) {
          for (auto& b : buf) b = uint8_t(rng());
          std::memcpy(model.data() + off, buf.data(), len);
        } else if (req.op == IoOp::kDiscard) {
          req.iov = {};
          std::memset(model.data() + off, 0, len);
        }
        std::promise<Status> p;
        dev->submit(req, [&](const Status& s) {
          completions++;
          p.set_value(s);
        });
        Status s = p.get_future().get();
        if (!s) failures++;
        if (req.op == IoOp::kRead && std::memcmp(buf.data(), model.data() + off, len) != 0) failures++;
      }
    });
  }
  for (auto& t : ts) t.join();
  std::promise<Status> fl;
  dev->submit({IoOp::kFlush}, [&](const Status& s) { fl.set_value(s); });
  if (!fl.get_future().get()) failures++;
  dev->drain();
  dev.reset();
  img = open_image(spec);
  std::vector<uint8_t> back(kSize);
  if (!img || !img.value()->pread(back.data(), kSize, 0) || back != model) failures++;
  std::printf("device_selftest: %d completions, %d failures\n", completions.load(), failures.load());
  return failures == 0 && completions == kThreads * kOps ? 0 : 1;
}
