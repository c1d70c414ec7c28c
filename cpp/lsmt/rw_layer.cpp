#include "lsmt/rw_layer.h"

#include "lsmt/ro_layer.h"

namespace obd::lsmt {

namespace {
uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }
}  // namespace

Status create_rw_layer(const std::string& data_path, const std::string& index_path, const CreateOptions& opts,
                       IoEngine engine) {
  if (opts.virtual_size == 0 || opts.virtual_size % kSector != 0)
    return Status(Code::kEINVAL, "virtual size " + std::to_string(opts.virtual_size) +
                                     " must be a positive multiple of 512 bytes");
  Record r;
  r.virtual_size = opts.virtual_size;
  r.uuid = opts.uuid == Uuid{} ? random_uuid() : opts.uuid;
  r.parent_uuid = opts.parent_uuid;
  r.flags = kFlagHeader | kFlagData | (opts.sparse ? kFlagSparse : 0);
  uint8_t rec[kHeaderSize];
  encode_record(r, rec);
  OBD_ASSIGN_OR_RETURN(FilePtr data, open_local(data_path, OpenMode::kCreateExclusive, engine));
  OBD_ASSIGN_OR_RETURN(FilePtr index, open_local(index_path, OpenMode::kCreateExclusive, engine));
  OBD_TRY(data->pwrite(rec, kHeaderSize, 0));
  if (opts.sparse) {
    OBD_TRY(data->truncate(kHeaderSize + opts.virtual_size));
  } else {
    r.flags = kFlagHeader;  // the index file
    r.index_offset = kHeaderSize;
    encode_record(r, rec);
    OBD_TRY(index->pwrite(rec, kHeaderSize, 0));
    OBD_TRY(index->sync());
  }
  return data->sync();
}

Result<std::unique_ptr<RwLayer>> RwLayer::open(FilePtr data, FilePtr index) {
  const std::string& name = data->name();
  uint8_t rec[kHeaderSize];
  OBD_TRY(data->read_exact(rec, kHeaderSize, 0, Code::kLSMT_TRUNCATED, "header"));
  OBD_ASSIGN_OR_RETURN(Record dh, decode_record(rec, name + " header"));
  if (!dh.is_header() || !dh.is_data())
    return Status(Code::kLSMT_BAD_HEADER, name + " header: flags " + std::to_string(dh.flags) +
                                              " are not those of an RW data file");
  OBD_ASSIGN_OR_RETURN(uint64_t data_size, data->size());
  // A sealed file carries a trailer after its data (for a sparse layer, after
  // the device image), and must not be written in place.
  uint64_t data_end = dh.is_sparse() ? kHeaderSize + dh.virtual_size : kHeaderSize;
  if (data_size >= data_end + kHeaderSize) {
    OBD_TRY(data->read_exact(rec, kHeaderSize, data_size - kHeaderSize, Code::kLSMT_TRUNCATED, "tail"));
    auto t = decode_record(rec, name);
    if (t && t->is_sealed())
      return Status(Code::kEROFS, name + ": the data file is sealed; open it as a read-only layer");
  }
  std::unique_ptr<RwLayer> l(new RwLayer(std::move(data), std::move(index), dh));
  if (dh.is_sparse()) {
    OBD_TRY(l->load_sparse_extents());
  } else {
    if (!l->index_file_)
      return Status(Code::kEINVAL, name + ": an append-mode writable layer needs its index file");
    OBD_ASSIGN_OR_RETURN(uint64_t isz, l->index_file_->size());
    // An empty index is what overlaybd-create leaves for a sparse layer.
    if (isz == 0)
      return Status(Code::kEINVAL, l->index_file_->name() + ": the index file is empty, but " + name +
                                       " is an append-mode data file, whose index starts with a 4096-byte header"
                                       " (an empty index belongs to a sparse layer)");
    OBD_TRY(l->load_append_index(data_size));
  }
  return l;
}

Result<std::unique_ptr<RwLayer>> RwLayer::open(const std::string& data, const std::string& index, bool writable,
                                               IoEngine engine) {
  OpenMode mode = writable ? OpenMode::kReadWrite : OpenMode::kRead;
  // One writer per layer: a writer locks its files exclusively, a reader
  // (commit) shares the lock, so neither meets a layer another one writes.
  OBD_ASSIGN_OR_RETURN(FilePtr df, open_local(data, mode, engine));
  OBD_TRY(df->try_lock(writable));
  FilePtr ixf;
  if (!index.empty()) {
    OBD_ASSIGN_OR_RETURN(ixf, open_local(index, mode, engine));
    OBD_TRY(ixf->try_lock(writable));
  }
  return open(std::move(df), std::move(ixf));
}

Status RwLayer::load_append_index(uint64_t data_size) {
  File& f = *index_file_;
  uint8_t rec[kHeaderSize];
  OBD_TRY(f.read_exact(rec, kHeaderSize, 0, Code::kLSMT_TRUNCATED, "index header"));
  OBD_ASSIGN_OR_RETURN(Record ih, decode_record(rec, f.name() + " header"));
  if (!ih.is_header() || ih.is_data() || ih.is_sealed() || ih.index_offset != kHeaderSize)
    return Status(Code::kLSMT_BAD_HEADER, f.name() + " header: flags " + std::to_string(ih.flags) +
                                              " / index_offset " + std::to_string(ih.index_offset) +
                                              " are not those of an RW index file (0x1, 4096)");
  header_.virtual_size = ih.virtual_size;  // the index file's size is authoritative
  OBD_ASSIGN_OR_RETURN(uint64_t isize, f.size());
  // A torn last entry (crash mid-append) is ignored and overwritten later.
  uint64_t count = (isize - kHeaderSize) / kSegmentSize;
  if (count > kMaxRwIndexSize)
    return Status(Code::kLSMT_INDEX_TOO_LARGE, f.name() + ": " + std::to_string(count) +
                                                   " entries exceed the limit of 128000000");
  OBD_ASSIGN_OR_RETURN(auto raw, read_raw_entries(f, kHeaderSize, count, f.name()));
  uint64_t data_sectors = data_size / kSector;
  for (size_t i = 0; i < raw.size(); i++) {
    Segment s = raw[i];
    if (s.is_invalid() || s.length == 0) continue;  // group-commit padding
    s.tag = 0;
    if (!s.zeroed && (s.moffset < kHeaderSize / kSector || s.moffset + s.length > data_sectors))
      return Status(Code::kLSMT_BAD_INDEX, f.name() + ": entry " + std::to_string(i) + " maps sectors [" +
                                               std::to_string(s.moffset) + ", " + std::to_string(s.moffset + s.length) +
                                               ") outside the data file's " + std::to_string(data_sectors));
    index_.insert(s);
  }
  index_end_ = kHeaderSize + count * kSegmentSize;
  data_end_ = round_up(data_size, kSector);
  return Status::ok();
}

Status RwLayer::load_sparse_extents() {
  OBD_ASSIGN_OR_RETURN(auto extents, data_->data_extents(kHeaderSize));
  uint64_t limit = kHeaderSize + header_.virtual_size;
  for (const Extent& e : extents) {
    uint64_t pos = e.off, end = std::min(e.off + e.len, limit);
    // Extents come from the host filesystem: block aligned, hence sector aligned.
    pos = pos / kSector * kSector;
    while (pos < end) {
      uint64_t n = std::min<uint64_t>(round_up(end - pos, kSector) / kSector, kMaxSegmentLength);
      Segment s{(pos - kHeaderSize) / kSector, uint32_t(n), pos / kSector, false, 0};
      index_.insert(s);
      pos += n * kSector;
    }
  }
  return Status::ok();
}

Status RwLayer::publish(std::span<const Segment> segs) {
  // Entries go to the index file and the map under one lock: the order of
  // the file is the order of the map, so a reopen replays the same winner
  // for writes that raced to one LBA.
  std::unique_lock lock(mu_);
  if (sealed_) return Status(Code::kEROFS, data_->name() + ": layer is sealed");
  return append_entries(segs);
}

Status RwLayer::append_entries(std::span<const Segment> segs) {
  std::vector<uint8_t> e(segs.size() * kSegmentSize);
  for (size_t i = 0; i < segs.size(); i++) encode_segment(segs[i], e.data() + i * kSegmentSize);
  OBD_TRY(index_file_->pwrite(e.data(), e.size(), index_end_));
  index_end_ += e.size();
  for (const Segment& s : segs) index_.insert(s);
  return Status::ok();
}

Status RwLayer::write(const void* buf, uint64_t lba, uint64_t nsect) {
  auto* p = static_cast<const uint8_t*>(buf);
  if (sparse()) {
    // The data has a fixed place: write it without the index lock, then map
    // it. A discard waits for the pair, or a racing one could leave a block
    // mapped over its punched hole.
    // seal() holds punch_mu_ too, so sealed_ cannot change under it.
    std::shared_lock punch(punch_mu_);
    if (sealed_) return Status(Code::kEROFS, data_->name() + ": layer is sealed");
    OBD_TRY(data_->pwrite(p, nsect * kSector, kHeaderSize + lba * kSector));
    std::unique_lock lock(mu_);
    // Index the whole host blocks the filesystem allocated, as a reopen will.
    uint64_t b = lba / kSparseBlockSectors * kSparseBlockSectors;
    uint64_t e = std::min(round_up(lba + nsect, kSparseBlockSectors), virtual_size() / kSector);
    for (uint64_t x = b; x < e;) {
      uint64_t n = std::min<uint64_t>(e - x, kMaxSegmentLength);
      index_.insert({x, uint32_t(n), x + kHeaderSize / kSector, false, 0});
      x += n;
    }
    return Status::ok();
  }
  uint64_t base;
  {
    // Reserve the space; the copy runs without the lock, so readers and
    // other writers are not held up by it.
    std::unique_lock lock(mu_);
    if (sealed_) return Status(Code::kEROFS, data_->name() + ": layer is sealed");
    base = data_end_ / kSector;
    data_end_ += nsect * kSector;
  }
  OBD_TRY(data_->pwrite(p, nsect * kSector, base * kSector));
  std::vector<Segment> segs;
  for (uint64_t done = 0; done < nsect;) {
    uint64_t n = std::min(nsect - done, kMaxIoSectors);
    segs.push_back({lba + done, uint32_t(n), base + done, false, 0});
    done += n;
  }
  return publish(segs);
}

Status RwLayer::discard(uint64_t lba, uint64_t nsect) {
  std::unique_lock punch(punch_mu_, std::defer_lock);
  if (sparse()) punch.lock();
  std::unique_lock lock(mu_);
  if (sealed_) return Status(Code::kEROFS, data_->name() + ": layer is sealed");
  if (sparse()) {
    OBD_TRY(data_->punch_hole(kHeaderSize + lba * kSector, nsect * kSector));
    // Only whole host blocks are deallocated; partial ones stay, now zero.
    uint64_t b = round_up(lba, kSparseBlockSectors), e = (lba + nsect) / kSparseBlockSectors * kSparseBlockSectors;
    if (e > b) index_.erase(b, e - b);
    return Status::ok();
  }
  std::vector<Segment> segs;
  for (uint64_t done = 0; done < nsect;) {
    uint64_t n = std::min<uint64_t>(nsect - done, kMaxSegmentLength);
    segs.push_back({lba + done, uint32_t(n), data_end_ / kSector, true, 0});
    done += n;
  }
  return append_entries(segs);
}

Status RwLayer::sync() {
  OBD_TRY(data_->sync());
  if (index_file_ && !sparse()) OBD_TRY(index_file_->sync());
  return Status::ok();
}

std::vector<Segment> RwLayer::resolved() const {
  std::shared_lock lock(mu_);
  return index_.to_vector();
}

Status RwLayer::seal() {
  // A sparse write stores its data before it takes mu_: wait for those too.
  std::unique_lock punch(punch_mu_, std::defer_lock);
  if (sparse()) punch.lock();
  std::unique_lock lock(mu_);
  if (sealed_) return Status(Code::kEROFS, data_->name() + ": layer is already sealed");
  std::vector<Segment> segs = index_.to_vector();
  uint64_t index_off = sparse() ? 0 : data_end_;
  if (sparse()) {
    OBD_ASSIGN_OR_RETURN(uint64_t sz, data_->size());
    index_off = round_up(sz, kSector);
  }
  // The array is rounded up to 32 entries (512 bytes); the tail is filler.
  size_t padded = round_up(segs.size(), 32);
  std::vector<uint8_t> buf(padded * kSegmentSize + kHeaderSize, 0);
  for (size_t i = 0; i < segs.size(); i++) encode_segment(segs[i], buf.data() + i * kSegmentSize);
  Record t = header_;
  t.flags = kFlagData | kFlagSealed;
  t.index_offset = index_off;
  t.index_size = segs.size();
  t.user_tag.clear();
  encode_record(t, buf.data() + padded * kSegmentSize);
  OBD_TRY(data_->pwrite(buf.data(), buf.size(), index_off));
  OBD_TRY(data_->sync());
  sealed_ = true;
  return Status::ok();
}

}  // namespace obd::lsmt
