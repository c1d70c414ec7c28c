#include "frontend/tcmu/ring.h"

#include "frontend/tcmu/uapi.h"

#include <algorithm>
#include <cstddef>
#include <cstring>

namespace obd::frontend::tcmu {
namespace {

// Field offsets inside the packed UAPI structs; read with memcpy, since
// the kernel packs them without alignment.
constexpr size_t kHeadOff = offsetof(tcmu_mailbox, cmd_head);
constexpr size_t kTailOff = offsetof(tcmu_mailbox, cmd_tail);
constexpr size_t kIovOff = offsetof(tcmu_cmd_entry, req.iov);
constexpr size_t kEntrySize = sizeof(tcmu_cmd_entry);

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename T>
void store(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

Status broken(const std::string& what) { return Status(Code::kEIO, "TCMU command ring broken: " + what); }

}  // namespace

Ring::Ring(uint8_t* map, size_t map_len, uint32_t cmdr_off, uint32_t cmdr_size, uint32_t tail)
    : map_(map), map_len_(map_len), cmdr_off_(cmdr_off), cmdr_size_(cmdr_size), fetch_(tail) {}

Result<Ring> Ring::attach(void* map, size_t map_len) {
  auto* m = static_cast<uint8_t*>(map);
  if (map_len < sizeof(tcmu_mailbox)) return broken("mapping of " + std::to_string(map_len) + " bytes holds no mailbox");
  uint16_t version = load<uint16_t>(m + offsetof(tcmu_mailbox, version));
  uint32_t off = load<uint32_t>(m + offsetof(tcmu_mailbox, cmdr_off));
  uint32_t size = load<uint32_t>(m + offsetof(tcmu_mailbox, cmdr_size));
  if (version != TCMU_MAILBOX_VERSION)
    return Status(Code::kENOTSUP, "TCMU mailbox version " + std::to_string(version) + ", expected " +
                                      std::to_string(TCMU_MAILBOX_VERSION));
  if (off < sizeof(tcmu_mailbox) || size < kEntrySize || size % TCMU_OP_ALIGN_SIZE || off > map_len ||
      size > map_len - off)
    return broken("command ring at " + std::to_string(off) + " size " + std::to_string(size) + " in a mapping of " +
                  std::to_string(map_len) + " bytes");
  uint32_t tail = load<uint32_t>(m + kTailOff);
  if (tail >= size || tail % TCMU_OP_ALIGN_SIZE) return broken("cmd_tail " + std::to_string(tail));
  return Ring(m, map_len, off, size, tail);
}

uint32_t Ring::head() const {
  return __atomic_load_n(reinterpret_cast<const uint32_t*>(map_ + kHeadOff), __ATOMIC_ACQUIRE);
}

uint32_t Ring::tail() const { return __atomic_load_n(reinterpret_cast<const uint32_t*>(map_ + kTailOff), __ATOMIC_RELAXED); }

void Ring::set_tail(uint32_t v) { __atomic_store_n(reinterpret_cast<uint32_t*>(map_ + kTailOff), v, __ATOMIC_RELEASE); }

bool Ring::read_len_supported() const {
  return load<uint16_t>(map_ + offsetof(tcmu_mailbox, flags)) & TCMU_MAILBOX_FLAG_CAP_READ_LEN;
}

uint32_t Ring::entry_len(uint32_t pos) const {
  if (cmdr_size_ - pos < sizeof(tcmu_cmd_entry_hdr)) return 0;
  uint32_t len_op = load<uint32_t>(entry(pos));
  uint32_t len = hdr_len(len_op);
  // An entry never wraps: the kernel pads to the end of the ring first.
  if (len < sizeof(tcmu_cmd_entry_hdr) || len > cmdr_size_ - pos) return 0;
  if (hdr_op(len_op) == TCMU_OP_CMD && len < kEntrySize) return 0;
  return len;
}

Result<bool> Ring::next(RingCommand& cmd) {
  uint32_t h = head();
  if (h >= cmdr_size_ || h % TCMU_OP_ALIGN_SIZE) return broken("cmd_head " + std::to_string(h));
  while (fetch_ != h) {
    uint32_t len = entry_len(fetch_);
    // An entry must end at or before cmd_head (the kernel's entries tile the ring).
    uint32_t before_head = (h + cmdr_size_ - fetch_) % cmdr_size_;
    if (len == 0 || len > before_head)
      return broken("entry at " + std::to_string(fetch_) + " has a bad length");
    const uint8_t* e = entry(fetch_);
    uint32_t pos = fetch_;
    fetch_ = (fetch_ + len) % cmdr_size_;
    if (hdr_op(load<uint32_t>(e)) != TCMU_OP_CMD) {  // PAD, TMR
      // With nothing in flight, the tail may pass it at once.
      if (in_flight_ == 0 && tail() == pos) set_tail(fetch_);
      continue;
    }
    in_flight_++;
    cmd.cmd_id = load<uint16_t>(e + offsetof(tcmu_cmd_entry_hdr, cmd_id));
    cmd.malformed = false;
    cmd.cdb_len = 0;
    cmd.iov.clear();
    uint32_t iov_cnt = load<uint32_t>(e + offsetof(tcmu_cmd_entry, req.iov_cnt));
    if (iov_cnt > (len - kIovOff) / sizeof(iovec)) {
      cmd.malformed = true;
      return true;
    }
    uint64_t data_start = uint64_t(cmdr_off_) + cmdr_size_;
    for (uint32_t i = 0; i < iov_cnt; i++) {
      const uint8_t* v = e + kIovOff + i * sizeof(iovec);
      uint64_t base = load<uint64_t>(v), n = load<uint64_t>(v + 8);
      if (base < data_start || base > map_len_ || n > map_len_ - base) {
        cmd.malformed = true;
        return true;
      }
      cmd.iov.push_back({map_ + base, n});
    }
    // The CDB sits in the entry after the iovecs; its length follows from its opcode.
    uint64_t cdb_off = load<uint64_t>(e + offsetof(tcmu_cmd_entry, req.cdb_off));
    uint64_t entry_off = uint64_t(cmdr_off_) + pos;
    if (cdb_off < entry_off || cdb_off >= entry_off + len) {
      cmd.malformed = true;
      return true;
    }
    size_t avail = std::min<uint64_t>(kMaxCdbLen, entry_off + len - cdb_off);
    std::span<const uint8_t> bytes(map_ + cdb_off, avail);
    size_t need = cdb_length(bytes);
    // An opcode of a reserved group keeps its first bytes, to be refused as such.
    cmd.cdb_len = need ? need : std::min<size_t>(avail, 16);
    if (cmd.cdb_len > avail) {
      cmd.malformed = true;
      return true;
    }
    std::memcpy(cmd.cdb, bytes.data(), cmd.cdb_len);
    return true;
  }
  return false;
}

void Ring::complete(const RingCommand& cmd, const ScsiResult& res) {
  uint32_t t = tail();
  // Step over PAD and TMR entries up to the oldest command entry.
  while (t != fetch_) {
    uint32_t len = entry_len(t);
    if (len == 0) return;  // next() has seen this entry already: cannot happen
    if (hdr_op(load<uint32_t>(entry(t))) == TCMU_OP_CMD) break;
    t = (t + len) % cmdr_size_;
  }
  if (t == fetch_) return;  // nothing fetched is waiting: a second completion
  uint8_t* e = entry(t);
  uint32_t len = entry_len(t);
  uint64_t total = 0;
  for (const iovec& v : cmd.iov) total += v.iov_len;
  uint8_t uflags = 0;
  if (read_len_supported() && res.data_in < total) uflags |= TCMU_UFLAG_READ_LEN;
  store<uint16_t>(e + offsetof(tcmu_cmd_entry_hdr, cmd_id), cmd.cmd_id);
  store<uint8_t>(e + offsetof(tcmu_cmd_entry_hdr, uflags), uflags);
  store<uint8_t>(e + offsetof(tcmu_cmd_entry, rsp.scsi_status), res.status);
  store<uint32_t>(e + offsetof(tcmu_cmd_entry, rsp.read_len), res.data_in);
  uint8_t* sense = e + offsetof(tcmu_cmd_entry, rsp.sense_buffer);
  std::memset(sense, 0, TCMU_SENSE_BUFFERSIZE);
  if (res.status == kStatusCheckCondition) std::memcpy(sense, res.sense, kFixedSenseLen);
  t = (t + len) % cmdr_size_;
  // Also past PAD/TMR entries already fetched, so a trailing one is released.
  for (uint32_t n; t != fetch_ && (n = entry_len(t)) && hdr_op(load<uint32_t>(entry(t))) != TCMU_OP_CMD;)
    t = (t + n) % cmdr_size_;
  set_tail(t);
  in_flight_--;
}

Result<size_t> process_ring(Ring& ring, const DiskInfo& disk, BlockIo& io, const std::function<void()>& notify) {
  RingCommand cmd;
  size_t done = 0;
  Status failed;
  for (;;) {
    auto got = ring.next(cmd);
    if (!got) {
      failed = got.status();
      break;
    }
    if (!*got) break;
    ScsiResult res = cmd.malformed ? check_condition(SenseKey::kHardwareError, 0x44, 0x00)  // internal target failure
                                   : execute_cdb({cmd.cdb, cmd.cdb_len}, cmd.iov, disk, io);
    ring.complete(cmd, res);
    done++;
  }
  if (done && notify) notify();
  if (!failed) return failed;
  return done;
}

}  // namespace obd::frontend::tcmu
