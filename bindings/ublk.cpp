// The ublk device object: an open image served as /dev/ublkbN
// (cpp/frontend/ublk). Requests run on the queue threads, never on this
// event loop; close() removes the device and joins them on the pool.
#include "device_wrap.h"
#include "frontend/ublk/server.h"

namespace obdjs {
namespace {

namespace fu = obd::frontend::ublk;

class UblkDeviceWrap final : public Napi::ObjectWrap<UblkDeviceWrap>, public DeviceWrap<fu::Server> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "NativeUblkDevice",
                       {InstanceMethod<&UblkDeviceWrap::close>("close", kMethod),
                        InstanceAccessor<&UblkDeviceWrap::path>("path"),
                        InstanceAccessor<&UblkDeviceWrap::dev_id>("devId")});
  }

  explicit UblkDeviceWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<UblkDeviceWrap>(info), DeviceWrap(info) {
    if (handle_) {
      path_ = handle_->path();
      dev_id_ = handle_->dev_id();
    }
  }

 private:
  Napi::Value path(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), path_); }
  Napi::Value dev_id(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), dev_id_); }

  // close() -> Promise<void>: STOP_DEV, joins the queue threads, DEL_DEV.
  Napi::Value close(const Napi::CallbackInfo& info) { return close_handle_async(info.Env(), "obd.ublk.close"); }

  std::string path_;
  int dev_id_ = -1;
};

// ublkServe(nativeImage, {devId?, recover?, queues?, depth?}) -> Promise<NativeUblkDevice>
Napi::Value ublk_serve(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  fu::ServeOptions o;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    Napi::Object opts = arg_object(info, 1, "options");
    if (env.IsExceptionPending()) return env.Undefined();
    if (opts.Has("devId") && !opts.Get("devId").IsUndefined()) o.dev_id = static_cast<int>(opt_u64(opts, "devId"));
    o.recover = opt_bool(opts, "recover");
    o.queues = static_cast<unsigned>(opt_u64(opts, "queues", 0));
    o.depth = static_cast<unsigned>(opt_u64(opts, "depth", 64));
    o.workers = static_cast<unsigned>(opt_u64(opts, "workers", 2));
    if (env.IsExceptionPending()) return env.Undefined();
  }
  return serve_image<fu::Server>(info, "obd.ublkServe", "NativeUblkDevice",
                                 [o](std::shared_ptr<obd::BlockDevice> dev) { return fu::serve(std::move(dev), o); });
}

void init_ublk(Napi::Env env, Napi::Object exports) {
  set_ctor(env, "NativeUblkDevice", UblkDeviceWrap::define(env));
  exports.Set("ublkServe", Napi::Function::New(env, ublk_serve, "ublkServe"));
  exports.Set("NativeUblkDevice", get_ctor(env, "NativeUblkDevice"));
}

Registrar reg("ublk", init_ublk);

}  // namespace
}  // namespace obdjs
