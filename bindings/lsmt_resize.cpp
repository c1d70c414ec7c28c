// resizeLayer(data, index, virtualSize) -> Promise<void>: sets a writable
// layer's virtual size in place (overlaybd-resize, §6.7). The layer is opened
// for writing, so a device using it makes this fail with EBUSY.
#include "common.h"
#include "lsmt/rw_layer.h"

namespace obdjs {
namespace {

Napi::Value resize_layer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string data = arg_string(info, 0, "data");
  std::string index = arg_string(info, 1, "index");
  uint64_t vsize = arg_u64(info, 2, "virtualSize");
  if (env.IsExceptionPending()) return env.Undefined();
  return run_async(env, "obd.resizeLayer", [data, index, vsize]() -> obd::Status {
    OBD_ASSIGN_OR_RETURN(auto rw, obd::lsmt::RwLayer::open(data, index, true));
    OBD_TRY(rw->set_virtual_size(vsize));
    return rw->sync();
  });
}

void init_resize(Napi::Env env, Napi::Object exports) {
  exports.Set("resizeLayer", Napi::Function::New(env, resize_layer));
}

Registrar reg("lsmt_resize", init_resize);

}  // namespace
}  // namespace obdjs
