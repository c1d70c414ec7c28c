// The registry blob File: each read is one ranged GET, retried within the
// read's deadline (§6.1). Never returns bytes it did not verify came from
// the asked range.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "io/nowait.h"
#include "remote/registry_core.h"

namespace obd::remote {

namespace {

// What one GET delivered into the caller's buffer. Accepts 206 with the
// matching Content-Range, or 200 (the whole blob: skip to the offset, stop
// once the range is complete).
struct RangeSink {
  RangeSink(char* buf, uint64_t off, uint64_t len, uint64_t blob_size)
      : buf(buf), off(off), len(len), blob_size(blob_size) {}
  char* buf;
  uint64_t off, len;
  uint64_t blob_size;  // 0 = unknown (open's size fetch)
  bool started = false;
  bool data = false;     // a 200/206 carrying blob bytes
  uint64_t skip = 0;
  uint64_t got = 0;
  std::optional<uint64_t> total;
  Status err;

  bool consume(const HttpResponse& resp, const char* p, size_t n) {
    if (!started) {
      started = true;
      if (!begin(resp)) return false;
    }
    if (!data) return true;  // an error body: read and drop
    if (skip > 0) {
      size_t s = std::min<uint64_t>(skip, n);
      skip -= s;
      p += s;
      n -= s;
    }
    size_t want = std::min<uint64_t>(n, len - got);
    std::memcpy(buf + got, p, want);
    got += want;
    if (want < n) {
      if (resp.status == 206) {
        err = Status(Code::kEIO, "body longer than the " + std::to_string(len) + " bytes asked");
        return false;
      }
      return false;  // a whole-blob 200: we have our range
    }
    return !(resp.status == 200 && got == len);
  }

  bool begin(const HttpResponse& resp) {
    if (resp.status == 206) {
      const std::string* h = resp.header("content-range");
      std::optional<ContentRange> cr = h ? parse_content_range(*h) : std::nullopt;
      if (cr && cr->total && blob_size != 0 && *cr->total != blob_size) return size_differs(*cr->total);
      if (!cr || cr->unsatisfied || cr->first != off || cr->last != off + len - 1) {
        err = Status(Code::kEIO, "HTTP 206 with wrong Content-Range '" + (h ? *h : std::string()) + "'");
        return false;
      }
      total = cr->total;
      data = true;
    } else if (resp.status == 200) {
      const std::string* cl = resp.header("content-length");
      if (cl) total = std::strtoull(cl->c_str(), nullptr, 10);
      if (blob_size != 0 && total && *total != blob_size) return size_differs(*total);
      skip = off;
      data = true;
    } else if (resp.status == 416 && blob_size != 0) {
      // A range past the registry's end: the config's size is wrong if the answer says so.
      const std::string* h = resp.header("content-range");
      std::optional<ContentRange> cr = h ? parse_content_range(*h) : std::nullopt;
      if (cr && cr->total && *cr->total != blob_size) return size_differs(*cr->total);
    }
    return true;
  }

  // Every answer is checked against the size the config gave, so the first
  // read of a blob needs no request of its own to check it.
  bool size_differs(uint64_t actual) {
    err = Status(Code::kEINVAL, "config.v1.json says " + std::to_string(blob_size) + " bytes, the registry has " +
                                    std::to_string(actual));
    return false;
  }
};

struct Attempt {
  Status status;
  long http = 0;
  uint64_t bytes = 0;
  std::optional<uint64_t> total;
  std::optional<uint64_t> retry_after_s;
  bool p2p = false;
};

class BlobFile final : public File {
 public:
  BlobFile(std::shared_ptr<RegistryCore> core, std::string url, std::string digest)
      : core_(std::move(core)), url_(std::move(url)), digest_(std::move(digest)) {}

  const std::string& name() const override { return digest_; }
  Result<uint64_t> size() override { return size_; }

  Result<size_t> pread(void* buf, size_t len, uint64_t off) override {
    if (off >= size_ || len == 0) return size_t(0);
    if (nowait_active()) return would_block(name());  // an HTTP round trip
    uint64_t n = std::min<uint64_t>(len, size_ - off);
    OBD_TRY(read_range(static_cast<char*>(buf), off, n, nullptr));
    return size_t(n);
  }

  // Open: the size from Content-Range of bytes 0-0.
  Status fetch_size() {
    char byte;
    uint64_t total = 0;
    OBD_TRY(read_range(&byte, 0, 1, &total));
    size_ = total;
    return Status::ok();
  }

  // Open with the size the config gives: no request now, so an image whose
  // reads the cache holds opens and reads with the registry unreachable.
  // Each answer is checked against it (RangeSink): a mismatch fails every
  // read that reaches the registry, naming both sizes.
  void assume_size(uint64_t size) { size_ = size; }

 private:
  // Reads [off, off+len) completely, or fails naming the digest and range.
  // `total_out` set: the blob size is unknown and is reported (open).
  Status read_range(char* buf, uint64_t off, uint64_t len, uint64_t* total_out) {
    const RegistryOptions& o = core_->options;
    auto deadline = Clock::now() + std::chrono::milliseconds(o.read_timeout_ms);
    uint32_t tries = std::max<uint32_t>(1, o.retries);
    bool auth_refreshed = false;
    Attempt a;
    uint32_t attempt = 0, counted = 0;
    while (counted < tries) {
      attempt++;
      counted++;
      a = attempt_once(buf, off, len, total_out != nullptr, deadline, attempt);
      if (a.status.is_ok()) {
        if (total_out) *total_out = a.total.value_or(0);
        return Status::ok();
      }
      Code code = a.status.code();
      // The resolved URL may be what failed (an expired redirect); find it again.
      core_->invalidate(url_, code == Code::kEPERM);
      if (code == Code::kEPERM && !auth_refreshed) {
        // An expired token: authenticate afresh once without using up a try.
        auth_refreshed = true;
        counted--;
        continue;
      }
      if (code == Code::kEPERM || code == Code::kENOENT || code == Code::kEINVAL) break;
      auto pause = std::chrono::milliseconds(o.retry_pause_ms);
      if (a.retry_after_s) {
        pause = std::chrono::seconds(*a.retry_after_s);
        if (counted < tries && Clock::now() + pause >= deadline) {
          a.status = Status(Code::kEBUSY, a.status.message() + ", Retry-After " + std::to_string(*a.retry_after_s) +
                                              " s is past the read's time limit");
          break;
        }
      }
      if (Clock::now() >= deadline) {
        if (code != Code::kETIMEDOUT) {
          a.status = Status(Code::kETIMEDOUT, a.status.message() + ", then the read's time limit of " +
                                                  std::to_string(o.read_timeout_ms) + " ms passed");
        }
        break;
      }
      if (counted < tries) std::this_thread::sleep_for(std::min<Clock::duration>(pause, deadline - Clock::now()));
    }
    return Status(a.status.code(), digest_ + ": bytes " + std::to_string(off) + "-" + std::to_string(off + len - 1) +
                                       ": " + a.status.message() + " after " + std::to_string(attempt) +
                                       (attempt == 1 ? " try" : " tries"));
  }

  Attempt attempt_once(char* buf, uint64_t off, uint64_t len, bool size_unknown, Clock::time_point deadline,
                       uint32_t attempt) {
    auto start = Clock::now();
    Attempt a = get(buf, off, len, size_unknown, deadline);
    if (core_->observer) {
      FetchEvent ev{&digest_, off, len, a.bytes,
                    uint64_t(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count()),
                    a.http, attempt, a.status.is_ok(), a.p2p};
      core_->observer->on_fetch(ev);
    }
    return a;
  }

  Attempt get(char* buf, uint64_t off, uint64_t len, bool size_unknown, Clock::time_point deadline) {
    Attempt a;
    auto resolved = core_->resolve(url_, deadline);
    if (!resolved) {
      a.status = resolved.status();
      return a;
    }
    const Resolved& r = **resolved;
    HttpRequest req;
    req.url = r.data_url;
    if (!r.redirected) {
      auto auth = core_->auth_header(r, url_, deadline);
      if (!auth) {
        a.status = auth.status();
        return a;
      }
      if (!auth->empty()) req.headers.push_back(*auth);
    }
    if (core_->p2p) {
      req.url = core_->options.p2p_address + "/" + req.url;
      a.p2p = true;
    }
    req.range = {{off, off + len - 1}};
    req.deadline = deadline;
    RangeSink sink(buf, off, len, size_unknown ? 0 : size_);
    req.on_body = [&sink](const HttpResponse& resp, const char* p, size_t n) { return sink.consume(resp, p, n); };
    auto resp = core_->http->get(req);
    a.bytes = sink.got;
    if (!resp) {
      a.status = resp.status();
      return a;
    }
    a.http = resp->status;
    if (!sink.started) sink.begin(*resp);  // an empty body
    if (!sink.err.is_ok()) {
      a.status = sink.err;
      return a;
    }
    if (sink.data) {
      if (sink.got < len) {
        a.status = Status(Code::kEIO, "HTTP " + std::to_string(resp->status) + " body ended after " +
                                          std::to_string(sink.got) + " of " + std::to_string(len) + " bytes");
        return a;
      }
      if (size_unknown && !sink.total) {
        a.status = Status(Code::kEIO, "HTTP " + std::to_string(resp->status) + " does not give the blob size");
        return a;
      }
      a.total = sink.total;
      return a;
    }
    if (size_unknown && resp->status == 416) {
      // An empty blob has no byte 0: "bytes */0".
      const std::string* h = resp->header("content-range");
      std::optional<ContentRange> cr = h ? parse_content_range(*h) : std::nullopt;
      if (cr && cr->unsatisfied && cr->total == 0u) {
        a.total = 0;
        return a;
      }
    }
    if (resp->status == 429) {
      if (const std::string* h = resp->header("retry-after")) a.retry_after_s = parse_retry_after(*h);
    }
    a.status = Status(http_status_code(resp->status), "HTTP " + std::to_string(resp->status));
    return a;
  }

  const std::shared_ptr<RegistryCore> core_;
  const std::string url_;
  const std::string digest_;
  uint64_t size_ = 0;  // set once by open, before the File is shared
};

}  // namespace

Result<FilePtr> open_blob_file(std::shared_ptr<RegistryCore> core, std::string url, std::string digest,
                               uint64_t expected_size) {
  auto f = std::make_shared<BlobFile>(std::move(core), std::move(url), std::move(digest));
  if (expected_size != 0) {
    f->assume_size(expected_size);
    return FilePtr(f);
  }
  OBD_TRY(f->fetch_size());
  return FilePtr(f);
}

}  // namespace obd::remote
