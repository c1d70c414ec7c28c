// The ublk payloads checked against the UAPI (sizes, the ioctl-encoded
// opcodes of 6.2+ headers, flags, params per read-only/writable) and the
// descriptor decoding the queue threads do, without the kernel.
#include <gtest/gtest.h>

#include <cerrno>

#include "frontend/ublk/wire.h"

namespace obd::frontend::ublk {
namespace {

TEST(UblkWire, UapiLayoutAndOpcodes) {
  EXPECT_EQ(sizeof(ublksrv_ctrl_cmd), 32u);
  EXPECT_EQ(sizeof(ublksrv_ctrl_dev_info), 64u);
  EXPECT_EQ(sizeof(ublksrv_io_desc), 24u);
  EXPECT_EQ(sizeof(ublksrv_io_cmd), 16u);
  EXPECT_EQ(sizeof(ublk_param_basic), 32u);
  EXPECT_EQ(sizeof(ublk_param_discard), 20u);
  // The values a 6.12 header spells out: _IOWR('u', nr, 32- or 16-byte struct).
  EXPECT_EQ(UBLK_U_CMD_ADD_DEV, 0xc0207504u);
  EXPECT_EQ(UBLK_U_CMD_DEL_DEV, 0xc0207505u);
  EXPECT_EQ(UBLK_U_CMD_START_DEV, 0xc0207506u);
  EXPECT_EQ(UBLK_U_CMD_STOP_DEV, 0xc0207507u);
  EXPECT_EQ(UBLK_U_CMD_SET_PARAMS, 0xc0207508u);
  EXPECT_EQ(UBLK_U_CMD_GET_DEV_INFO, 0x80207502u);
  EXPECT_EQ(UBLK_U_CMD_START_USER_RECOVERY, 0xc0207510u);
  EXPECT_EQ(UBLK_U_CMD_END_USER_RECOVERY, 0xc0207511u);
  EXPECT_EQ(UBLK_U_IO_FETCH_REQ, 0xc0107520u);
  EXPECT_EQ(UBLK_U_IO_COMMIT_AND_FETCH_REQ, 0xc0107521u);
}

TEST(UblkWire, ShapeLimits) {
  EXPECT_TRUE(check_shape({2, 64, 512 << 10}).is_ok());
  EXPECT_EQ(check_shape({0, 64, 512 << 10}).code(), Code::kEINVAL);
  EXPECT_EQ(check_shape({1, 0, 512 << 10}).code(), Code::kEINVAL);
  EXPECT_EQ(check_shape({1, 4097, 512 << 10}).code(), Code::kEINVAL);
  EXPECT_EQ(check_shape({1, 64, 1000}).code(), Code::kEINVAL);
}

TEST(UblkWire, DevInfoAsksForRecovery) {
  ublksrv_ctrl_dev_info i = make_dev_info({2, 64, 256 << 10}, -1, 1234);
  EXPECT_EQ(i.nr_hw_queues, 2);
  EXPECT_EQ(i.queue_depth, 64);
  EXPECT_EQ(i.max_io_buf_bytes, 256u << 10);
  EXPECT_EQ(i.dev_id, 0xffffffffu);
  EXPECT_EQ(i.ublksrv_pid, 1234);
  EXPECT_TRUE(i.flags & UBLK_F_USER_RECOVERY);
  EXPECT_TRUE(i.flags & UBLK_F_USER_RECOVERY_REISSUE);
  EXPECT_TRUE(i.flags & UBLK_F_CMD_IOCTL_ENCODE);
  EXPECT_FALSE(i.flags & UBLK_F_NEED_GET_DATA);
  EXPECT_EQ(make_dev_info({1, 8, 4096}, 7, 1).dev_id, 7u);
}

TEST(UblkWire, ParamsReadOnlyAndWritable) {
  ublk_params ro = make_params(2ull << 30, true, 512 << 10);
  EXPECT_EQ(ro.len, sizeof(ublk_params));
  EXPECT_EQ(ro.types, UBLK_PARAM_TYPE_BASIC);
  EXPECT_EQ(ro.basic.attrs, UBLK_ATTR_READ_ONLY);
  EXPECT_EQ(ro.basic.logical_bs_shift, 9);
  EXPECT_EQ(ro.basic.physical_bs_shift, 12);
  EXPECT_EQ(ro.basic.dev_sectors, (2ull << 30) / 512);
  EXPECT_EQ(ro.basic.max_sectors, 1024u);
  ublk_params rw = make_params(1ull << 30, false, 128 << 10);
  EXPECT_EQ(rw.types, UBLK_PARAM_TYPE_BASIC | UBLK_PARAM_TYPE_DISCARD);
  EXPECT_EQ(rw.basic.attrs, UBLK_ATTR_VOLATILE_CACHE);  // flushes reach the server
  EXPECT_EQ(rw.basic.max_sectors, 256u);
  EXPECT_EQ(rw.discard.discard_granularity, 4096u);
  EXPECT_EQ(rw.discard.max_discard_segments, 1);
  EXPECT_GT(rw.discard.max_write_zeroes_sectors, 0u);
}

TEST(UblkWire, DescriptorOffsets) {
  EXPECT_EQ(desc_offset(0), 0);
  EXPECT_EQ(desc_offset(1), 4096 * 24);
  EXPECT_EQ(desc_length(64, 4096), 4096u);
  EXPECT_EQ(desc_length(171, 4096), 8192u);
}

ublksrv_io_desc desc(uint8_t op, uint32_t flags, uint64_t sector, uint32_t sectors) {
  ublksrv_io_desc d{};
  d.op_flags = op | flags;
  d.start_sector = sector;
  d.nr_sectors = sectors;
  return d;
}

TEST(UblkWire, DecodeEachOperation) {
  alignas(4096) static uint8_t buf[8192];
  IoRequest r;
  iovec iov;
  ASSERT_TRUE(decode(desc(UBLK_IO_OP_READ, 0, 8, 16), buf, sizeof buf, r, iov));
  EXPECT_EQ(r.op, IoOp::kRead);
  EXPECT_EQ(r.offset, 4096u);
  EXPECT_EQ(r.length, 8192u);
  EXPECT_EQ(r.iovcnt, 1u);
  EXPECT_EQ(r.iov->iov_base, buf);
  EXPECT_EQ(r.iov->iov_len, 8192u);
  EXPECT_EQ(commit_result(r, true), 8192);
  EXPECT_EQ(commit_result(r, false), -EIO);

  ASSERT_TRUE(decode(desc(UBLK_IO_OP_WRITE, UBLK_IO_F_FUA, 1, 1), buf, sizeof buf, r, iov));
  EXPECT_EQ(r.op, IoOp::kWrite);
  EXPECT_EQ(r.offset, 512u);
  EXPECT_EQ(commit_result(r, true), 512);

  ASSERT_TRUE(decode(desc(UBLK_IO_OP_FLUSH, 0, 0, 0), buf, sizeof buf, r, iov));
  EXPECT_EQ(r.op, IoOp::kFlush);
  EXPECT_EQ(r.iovcnt, 0u);
  EXPECT_EQ(commit_result(r, true), 0);

  ASSERT_TRUE(decode(desc(UBLK_IO_OP_DISCARD, 0, 2048, 1u << 20), buf, sizeof buf, r, iov));
  EXPECT_EQ(r.op, IoOp::kDiscard);
  EXPECT_EQ(r.length, 512ull << 20);  // no buffer: larger than it is fine
  EXPECT_EQ(commit_result(r, true), 0);

  ASSERT_TRUE(decode(desc(UBLK_IO_OP_WRITE_ZEROES, 0, 0, 8), buf, sizeof buf, r, iov));
  EXPECT_EQ(r.op, IoOp::kWriteZeroes);
  EXPECT_TRUE(r.may_unmap);
  ASSERT_TRUE(decode(desc(UBLK_IO_OP_WRITE_ZEROES, UBLK_IO_F_NOUNMAP, 0, 8), buf, sizeof buf, r, iov));
  EXPECT_FALSE(r.may_unmap);
}

TEST(UblkWire, DecodeRefusesWhatItCannotServe) {
  alignas(4096) static uint8_t buf[4096];
  IoRequest r;
  iovec iov;
  EXPECT_FALSE(decode(desc(UBLK_IO_OP_WRITE_SAME, 0, 0, 8), buf, sizeof buf, r, iov));
  EXPECT_FALSE(decode(desc(0x7f, 0, 0, 8), buf, sizeof buf, r, iov));
  EXPECT_FALSE(decode(desc(UBLK_IO_OP_READ, 0, 0, 16), buf, sizeof buf, r, iov));  // 8 KiB into 4 KiB
}

}  // namespace
}  // namespace obd::frontend::ublk
