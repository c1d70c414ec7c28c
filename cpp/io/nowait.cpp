#include "io/nowait.h"

namespace obd {
namespace {

struct NoWaitState {
  bool active = false;
  bool refused = false;
};

thread_local NoWaitState t_nowait;

}  // namespace

NoWaitScope::NoWaitScope() : outer_active_(t_nowait.active), outer_refused_(t_nowait.refused) {
  t_nowait = {true, false};
}

NoWaitScope::~NoWaitScope() { t_nowait = {outer_active_, outer_refused_}; }

bool NoWaitScope::refused() const { return t_nowait.refused; }

bool nowait_active() { return t_nowait.active; }

Status would_block(const std::string& what) {
  t_nowait.refused = true;
  return Status(Code::kEAGAIN, what + ": would wait for I/O (a non-blocking read)");
}

}  // namespace obd
