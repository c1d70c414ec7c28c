#include "frontend/ublk/control.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace obd::frontend::ublk {

Result<std::unique_ptr<Control>> Control::open() {
  std::unique_ptr<Control> c(new Control());
  c->fd_ = ::open("/dev/ublk-control", O_RDWR | O_CLOEXEC);
  if (c->fd_ < 0) {
    int e = errno;
    return Status(e == ENOENT ? Code::kENOTSUP : Code::kEIO,
                  std::string("ublk: cannot open /dev/ublk-control (is ublk_drv loaded?): ") + std::strerror(e));
  }
  int rc = io_uring_queue_init(4, &c->ring_, IORING_SETUP_SQE128);
  if (rc < 0) return Status::from_errno(-rc, "ublk: io_uring for /dev/ublk-control");
  c->ring_ok_ = true;
  return c;
}

Control::~Control() {
  if (ring_ok_) io_uring_queue_exit(&ring_);
  if (fd_ >= 0) ::close(fd_);
}

Result<int> Control::cmd(uint32_t op, uint32_t dev_id, void* buf, uint16_t len, uint64_t data0, const char* what) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (!sqe) return Status(Code::kINTERNAL, "ublk: control ring full");
  std::memset(reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(sqe)), 0, 128);  // a 128-byte SQE
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = fd_;
  sqe->cmd_op = op;
  auto* c = reinterpret_cast<ublksrv_ctrl_cmd*>(sqe->cmd);
  c->dev_id = dev_id;
  c->queue_id = static_cast<uint16_t>(-1);
  c->addr = reinterpret_cast<uintptr_t>(buf);
  c->len = len;
  c->data[0] = data0;
  int rc = io_uring_submit(&ring_);
  if (rc < 0) return Status::from_errno(-rc, std::string("ublk: submit ") + what);
  io_uring_cqe* cqe = nullptr;
  do rc = io_uring_wait_cqe(&ring_, &cqe);
  while (rc == -EINTR);
  if (rc < 0) return Status::from_errno(-rc, std::string("ublk: wait for ") + what);
  int res = cqe->res;
  io_uring_cqe_seen(&ring_, cqe);
  if (res < 0) {
    std::string msg = std::string("ublk: ") + what + " of device " + std::to_string(static_cast<int>(dev_id)) +
                      " failed: " + std::strerror(-res);
    Code code = res == -EBUSY ? Code::kEBUSY : res == -ENODEV || res == -ENOENT ? Code::kENOENT
              : res == -EEXIST ? Code::kEEXIST : res == -EPERM || res == -EACCES ? Code::kEPERM
              : res == -EINVAL ? Code::kEINVAL : Code::kEIO;
    return Status(code, msg);
  }
  return res;
}

Status Control::add(ublksrv_ctrl_dev_info& info) {
  return cmd(UBLK_U_CMD_ADD_DEV, info.dev_id, &info, sizeof info, 0, "ADD_DEV").status();
}
Status Control::set_params(uint32_t id, ublk_params& p) {
  return cmd(UBLK_U_CMD_SET_PARAMS, id, &p, sizeof p, 0, "SET_PARAMS").status();
}
Status Control::get_info(uint32_t id, ublksrv_ctrl_dev_info& info) {
  std::memset(&info, 0, sizeof info);
  return cmd(UBLK_U_CMD_GET_DEV_INFO, id, &info, sizeof info, 0, "GET_DEV_INFO").status();
}
Status Control::start(uint32_t id, int pid) { return cmd(UBLK_U_CMD_START_DEV, id, nullptr, 0, pid, "START_DEV").status(); }
Status Control::stop(uint32_t id) { return cmd(UBLK_U_CMD_STOP_DEV, id, nullptr, 0, 0, "STOP_DEV").status(); }
Status Control::del(uint32_t id) { return cmd(UBLK_U_CMD_DEL_DEV, id, nullptr, 0, 0, "DEL_DEV").status(); }
Status Control::start_recovery(uint32_t id) {
  return cmd(UBLK_U_CMD_START_USER_RECOVERY, id, nullptr, 0, 0, "START_USER_RECOVERY").status();
}
Status Control::end_recovery(uint32_t id, int pid) {
  return cmd(UBLK_U_CMD_END_USER_RECOVERY, id, nullptr, 0, pid, "END_USER_RECOVERY").status();
}

}  // namespace obd::frontend::ublk
