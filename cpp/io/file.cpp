#include "io/file.h"

#include <cstring>
#include <optional>

namespace obd {

Status File::pread_batch(std::span<ReadReq> reqs) {
  for (auto& r : reqs) {
    OBD_ASSIGN_OR_RETURN(r.done, pread(r.buf, r.len, r.off));
  }
  return Status::ok();
}

Status File::pwrite(const void*, size_t, uint64_t) {
  return Status(Code::kEROFS, name() + ": file is read-only");
}
Status File::punch_hole(uint64_t, uint64_t) {
  return Status(Code::kEROFS, name() + ": file is read-only");
}
Status File::truncate(uint64_t) { return Status(Code::kEROFS, name() + ": file is read-only"); }
Status File::sync() { return Status::ok(); }
Status File::invalidate(uint64_t, uint64_t) {
  return Status(Code::kENOTSUP, name() + ": file keeps no cache to invalidate");
}
Status File::try_lock(bool) { return Status(Code::kENOTSUP, name() + ": file cannot be locked"); }

Result<std::vector<Extent>> File::data_extents(uint64_t from) {
  OBD_ASSIGN_OR_RETURN(uint64_t sz, size());
  std::vector<Extent> v;
  if (from < sz) v.push_back({from, sz - from});
  return v;
}

Status File::read_exact(void* buf, size_t len, uint64_t off, Code truncated_code, const char* what) {
  OBD_ASSIGN_OR_RETURN(size_t got, pread(buf, len, off));
  if (got != len) {
    return Status(truncated_code, name() + ": " + what + " at offset " + std::to_string(off) + ": wanted " +
                                      std::to_string(len) + " bytes, file ends after " + std::to_string(got));
  }
  return Status::ok();
}

namespace {

class MemoryFile final : public File {
 public:
  MemoryFile(std::string name, std::vector<uint8_t> bytes) : name_(std::move(name)), data_(std::move(bytes)) {}
  const std::string& name() const override { return name_; }
  Result<uint64_t> size() override { return uint64_t(data_.size()); }
  Result<size_t> pread(void* buf, size_t len, uint64_t off) override {
    if (off >= data_.size()) return size_t(0);
    size_t n = std::min<uint64_t>(len, data_.size() - off);
    std::memcpy(buf, data_.data() + off, n);
    return n;
  }
  Status pwrite(const void* buf, size_t len, uint64_t off) override {
    if (off + len > data_.size()) data_.resize(off + len);
    std::memcpy(data_.data() + off, buf, len);
    return Status::ok();
  }
  Status punch_hole(uint64_t off, uint64_t len) override {
    if (off < data_.size()) std::memset(data_.data() + off, 0, std::min<uint64_t>(len, data_.size() - off));
    return Status::ok();
  }
  Status truncate(uint64_t size) override {
    data_.resize(size);
    return Status::ok();
  }

 private:
  std::string name_;
  std::vector<uint8_t> data_;
};

class ViewFile final : public File {
 public:
  // `len` empty: the view runs to the inner file's end and may be written.
  ViewFile(FilePtr inner, uint64_t base, std::optional<uint64_t> len, std::string name)
      : inner_(std::move(inner)), base_(base), len_(len), name_(std::move(name)) {}
  const std::string& name() const override { return name_; }
  Result<uint64_t> size() override {
    if (len_) return *len_;
    OBD_ASSIGN_OR_RETURN(uint64_t sz, inner_->size());
    return sz > base_ ? sz - base_ : 0;
  }
  Result<size_t> pread(void* buf, size_t len, uint64_t off) override {
    if (!len_) return inner_->pread(buf, len, base_ + off);
    if (off >= *len_) return size_t(0);
    return inner_->pread(buf, std::min<uint64_t>(len, *len_ - off), base_ + off);
  }
  Status pread_batch(std::span<ReadReq> reqs) override {
    bool inside = true;
    if (len_) {
      for (const auto& r : reqs) inside = inside && r.off <= *len_ && r.len <= *len_ - r.off;
    }
    if (inside) {  // the usual case: shift in place, no copy on the read path
      for (auto& r : reqs) r.off += base_;
      Status s = inner_->pread_batch(reqs);
      for (auto& r : reqs) r.off -= base_;
      return s;
    }
    std::vector<ReadReq> inner(reqs.begin(), reqs.end());
    for (auto& r : inner) {
      r.len = r.off >= *len_ ? 0 : std::min<uint64_t>(r.len, *len_ - r.off);
      r.off += base_;
    }
    OBD_TRY(inner_->pread_batch(inner));
    for (size_t i = 0; i < reqs.size(); i++) reqs[i].done = inner[i].done;
    return Status::ok();
  }
  Status pwrite(const void* buf, size_t len, uint64_t off) override {
    return len_ ? File::pwrite(buf, len, off) : inner_->pwrite(buf, len, base_ + off);
  }
  Status punch_hole(uint64_t off, uint64_t len) override {
    return len_ ? File::punch_hole(off, len) : inner_->punch_hole(base_ + off, len);
  }
  Status truncate(uint64_t size) override { return len_ ? File::truncate(size) : inner_->truncate(base_ + size); }
  Status sync() override { return len_ ? Status::ok() : inner_->sync(); }
  Status invalidate(uint64_t off, uint64_t len) override {
    if (len_) {
      if (off >= *len_) return Status::ok();
      len = std::min<uint64_t>(len, *len_ - off);
    }
    return inner_->invalidate(base_ + off, len);
  }

 private:
  FilePtr inner_;
  uint64_t base_;
  std::optional<uint64_t> len_;
  std::string name_;
};

}  // namespace

FilePtr make_memory_file(std::string name, std::vector<uint8_t> bytes) {
  return std::make_shared<MemoryFile>(std::move(name), std::move(bytes));
}

FilePtr make_view(FilePtr inner, uint64_t base, uint64_t len, std::string name) {
  return std::make_shared<ViewFile>(std::move(inner), base, len, std::move(name));
}

FilePtr make_shifted(FilePtr inner, uint64_t base) {
  std::string name = inner->name();
  return std::make_shared<ViewFile>(std::move(inner), base, std::nullopt, std::move(name));
}

}  // namespace obd
