// An io_uring wait that fails with anything but EINTR returns EIO instead of
// retrying forever. Drives a real failure: a thread waits for a read of an
// empty pipe; its ring's descriptor is replaced by /dev/null and the wait is
// interrupted, so the next io_uring_enter fails with EOPNOTSUPP.
#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "io/local_file.h"
#include "tests/test_util.h"

using namespace obd;

namespace {

void on_signal(int) {}

// The descriptors of this process's io_uring instances.
std::set<int> ring_fds() {
  std::set<int> fds;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d)) {
      char target[256];
      std::string link = std::string("/proc/self/fd/") + e->d_name;
      ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
      if (n > 0 && std::string(target, size_t(n)) == "anon_inode:[io_uring]") fds.insert(std::atoi(e->d_name));
    }
    ::closedir(d);
  }
  return fds;
}

// True while thread `tid` sleeps in io_uring_enter (426 on x86-64 and arm64).
bool sleeps_in_uring_enter(pid_t tid) {
  std::string task = "/proc/self/task/" + std::to_string(tid);
  std::ifstream sc(task + "/syscall"), st(task + "/stat");
  std::string nr, stat;
  sc >> nr;
  std::getline(st, stat);
  size_t paren = stat.rfind(')');
  return nr == "426" && paren != std::string::npos && stat.size() > paren + 2 && stat[paren + 2] == 'S';
}

template <typename Pred>
bool wait_until(Pred done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// What the reader thread shares with the test; shared, so a reader left
// spinning (the defect) can be detached without dangling references.
struct Reader {
  std::shared_ptr<UringFile> file;
  std::atomic<pid_t> tid{0};
  std::atomic<bool> finished{false};
  Status result;
};

TEST(UringWait, FailedWaitReturnsEioInsteadOfSpinning) {
  if (!io_uring_available()) GTEST_SKIP() << "io_uring is not available here";
  struct sigaction sa {}, old {};
  sa.sa_handler = on_signal;  // no SA_RESTART: the wait returns EINTR
  ASSERT_EQ(::sigaction(SIGUSR1, &sa, &old), 0);
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  auto rd = std::make_shared<Reader>();
  rd->file = std::make_shared<UringFile>(p[0], "test-pipe");  // owns p[0]
  std::set<int> before = ring_fds();  // rings other threads may hold
  std::thread t([rd] {
    rd->tid = pid_t(::syscall(SYS_gettid));
    char buf[16];
    ReadReq r{buf, sizeof buf, 0};
    rd->result = rd->file->pread_batch(std::span<ReadReq>(&r, 1));
    rd->finished = true;
  });
  bool waiting = wait_until([&] { return rd->finished || (rd->tid && sleeps_in_uring_enter(rd->tid)); });
  bool returned_early = rd->finished.load();
  int ring_fd = -1;
  for (int fd : ring_fds())
    if (!before.count(fd)) ring_fd = fd;  // the reader's own ring
  if (!waiting || returned_early || ring_fd < 0) {
    ::close(p[1]);  // ends the read, so the thread can be joined
    t.join();
    ::sigaction(SIGUSR1, &old, nullptr);
    ASSERT_FALSE(returned_early) << "the read of an empty pipe returned: " << rd->result.to_string();
    ASSERT_TRUE(waiting) << "the reader never slept in io_uring_enter";
    FAIL() << "no new io_uring descriptor found for the reader";
  }
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(devnull, 0);
  ASSERT_GE(::dup2(devnull, ring_fd), 0);
  ::close(devnull);
  ::pthread_kill(t.native_handle(), SIGUSR1);
  bool returned = wait_until([&] { return rd->finished.load(); });
  if (returned) {
    t.join();
  } else {
    t.detach();  // it spins on the broken ring; the test process ends soon
  }
  ::close(p[1]);
  if (returned) ::sigaction(SIGUSR1, &old, nullptr);
  ASSERT_TRUE(returned) << "the wait loop did not return after its ring failed (spinning)";
  EXPECT_EQ(rd->result.code(), Code::kEIO) << rd->result.to_string();
}

}  // namespace
