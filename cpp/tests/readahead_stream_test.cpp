// The read-ahead stream gives the inner stream's bytes in order, then its end
// or error; it reports what it took from the source; and a reader that stops
// early while the source blocks (a pipe nobody writes) neither hangs nor
// leaves the source open.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "archive/readahead_stream.h"

namespace obd {
namespace {

// Gives `data` in pieces of up to `piece` bytes, then `end` (ok: the end).
class ScriptedStream final : public ByteStream {
 public:
  ScriptedStream(std::vector<uint8_t> data, size_t piece, Status end)
      : data_(std::move(data)), piece_(piece), end_(std::move(end)) {}
  Result<size_t> read(void* buf, size_t n) override {
    if (pos_ == data_.size()) {
      if (!end_.is_ok()) return end_;
      return size_t(0);
    }
    size_t k = std::min({n, piece_, data_.size() - pos_});
    std::memcpy(buf, data_.data() + pos_, k);
    pos_ += k;
    return k;
  }
  uint64_t consumed() const override { return pos_; }
  const std::string& name() const override { return name_; }

 private:
  std::vector<uint8_t> data_;
  size_t piece_, pos_ = 0;
  Status end_;
  std::string name_ = "scripted";
};

std::vector<uint8_t> pattern(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; i++) v[i] = uint8_t(i * 131 + (i >> 9));
  return v;
}

// Reads to the end in reads of `n` bytes; the bytes, then the final status.
std::pair<std::vector<uint8_t>, Status> drain(ByteStream& s, size_t n) {
  std::vector<uint8_t> out, buf(n);
  for (;;) {
    Result<size_t> r = s.read(buf.data(), n);
    if (!r) return {out, r.status()};
    if (*r == 0) return {out, Status::ok()};
    out.insert(out.end(), buf.begin(), buf.begin() + long(*r));
  }
}

TEST(ReadaheadStreamTest, GivesTheBytesInOrderThenTheEnd) {
  for (size_t size : {size_t(0), size_t(1), size_t(4095), size_t(64 * 1024), size_t(300 * 1024 + 7)}) {
    for (size_t read_size : {size_t(1), size_t(512), size_t(100000)}) {
      auto data = pattern(size);
      auto s = make_readahead_stream(std::make_unique<ScriptedStream>(data, 777, Status::ok()), 4096, 3);
      auto [got, end] = drain(*s, read_size);
      EXPECT_TRUE(end.is_ok()) << end.to_string();
      EXPECT_EQ(got, data) << "size " << size << ", reads of " << read_size;
      EXPECT_EQ(s->consumed(), size);
      EXPECT_EQ(s->name(), "scripted");
      // The end stays the end.
      uint8_t b;
      EXPECT_EQ(s->read(&b, 1).value(), 0u);
    }
  }
}

TEST(ReadaheadStreamTest, AnErrorComesAfterTheBytesBeforeIt) {
  auto data = pattern(50 * 1000);
  auto s = make_readahead_stream(
      std::make_unique<ScriptedStream>(data, 1000, Status(Code::kGZIP_CORRUPT, "bad block")), 4096, 2);
  auto [got, end] = drain(*s, 333);
  EXPECT_EQ(got, data);
  EXPECT_EQ(end.code(), Code::kGZIP_CORRUPT);
  uint8_t b;
  EXPECT_EQ(s->read(&b, 1).status().code(), Code::kGZIP_CORRUPT);  // and stays
}

TEST(ReadaheadStreamTest, AReaderThatStopsEarlyDoesNotWaitForTheSource) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ASSERT_EQ(::write(fds[1], "abcd", 4), 4);
  auto s = make_readahead_stream(make_fd_stream(fds[0], "pipe", /*own=*/true), 4096, 2);
  // The producer now waits in read() for more of the pipe.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto t0 = std::chrono::steady_clock::now();
  s.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500));
  // Its read then ends, and the producer closes the read end.
  ::close(fds[1]);
  for (int i = 0; i < 200; i++) {
    if (::fcntl(fds[0], F_GETFD) == -1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(::fcntl(fds[0], F_GETFD), -1) << "the read end is still open";
}

}  // namespace
}  // namespace obd
