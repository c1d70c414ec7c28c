// <linux/target_core_user.h> for C++. The header is C: its inline helpers
// return an enum made from an integer, which C++ refuses, and it pulls in
// <linux/uio.h>, whose struct iovec clashes with glibc's. Both are
// neutralised here (the helpers become unused templates, the kernel's
// iovec is renamed; its layout is glibc's), and the layout is pinned below.
#pragma once
#include <linux/types.h>
#include <sys/uio.h>

#include <cstddef>

#define iovec linux_iovec
#define static
#define __inline__ template <typename = void> inline
#include <linux/target_core_user.h>
#undef __inline__
#undef static
#undef iovec

namespace obd::frontend::tcmu {

static_assert(sizeof(linux_iovec) == sizeof(iovec));
static_assert(sizeof(tcmu_mailbox) == 128 && offsetof(tcmu_mailbox, cmd_tail) == 64);
static_assert(sizeof(tcmu_cmd_entry) == 112 && offsetof(tcmu_cmd_entry, req.iov) == 48);

constexpr uint32_t hdr_op(uint32_t len_op) { return len_op & TCMU_OP_MASK; }
constexpr uint32_t hdr_len(uint32_t len_op) { return len_op & ~uint32_t(TCMU_OP_MASK); }

}  // namespace obd::frontend::tcmu
