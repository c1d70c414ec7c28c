// The ublk device object: an open image served as /dev/ublkbN
// (cpp/frontend/ublk). Requests run on the queue threads, never on this
// event loop; close() removes the device and joins them on the pool.
#include "common.h"
#include "device/image_device.h"
#include "frontend/ublk/server.h"
#include "image_wrap.h"

namespace obdjs {
namespace {

namespace fu = obd::frontend::ublk;
using ServerPtr = std::shared_ptr<fu::Server>;

class UblkDeviceWrap final : public Napi::ObjectWrap<UblkDeviceWrap>, public Closable {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "NativeUblkDevice",
                       {InstanceMethod<&UblkDeviceWrap::close>("close", kMethod),
                        InstanceAccessor<&UblkDeviceWrap::path>("path"),
                        InstanceAccessor<&UblkDeviceWrap::dev_id>("devId")});
  }

  explicit UblkDeviceWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<UblkDeviceWrap>(info), Closable(info.Env()) {
    if (info.Length() == 1 && info[0].IsExternal()) {
      server_ = *info[0].As<Napi::External<ServerPtr>>().Data();
      path_ = server_->path();
      dev_id_ = server_->dev_id();
    } else {
      life_->mark_closed();
    }
  }

  // Environment teardown: remove the device rather than leave one whose
  // I/O nobody serves.
  void release() override {
    life_->mark_closed();
    if (server_) (void)server_->close();
    server_.reset();
  }

 private:
  Napi::Value path(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), path_); }
  Napi::Value dev_id(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), dev_id_); }

  // close() -> Promise<void>: STOP_DEV, joins the queue threads, DEL_DEV.
  Napi::Value close(const Napi::CallbackInfo& info) {
    ServerPtr s = std::move(server_);
    return life_->close(info.Env(), "obd.ublk.close", [s]() mutable -> obd::Status {
      obd::Status st = s ? s->close() : obd::Status::ok();
      s.reset();
      return st;
    });
  }

  ServerPtr server_;
  std::string path_;
  int dev_id_ = -1;
};

// ublkServe(nativeImage, {devId?, recover?, queues?, depth?}) -> Promise<NativeUblkDevice>
Napi::Value ublk_serve(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  obd::ImagePtr img = unwrap_image(info[0]);
  if (!img) {
    throw_status(env, obd::Status(obd::Code::kEINVAL, "argument 0 (image) must be an open NativeImage"));
    return env.Undefined();
  }
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
  auto result = std::make_shared<ServerPtr>();
  return run_async(
      env, "obd.ublkServe",
      [img, o, result]() mutable -> obd::Status {
        std::shared_ptr<obd::BlockDevice> dev = obd::make_image_device(std::move(img));
        OBD_ASSIGN_OR_RETURN(auto s, fu::serve(std::move(dev), o));
        *result = std::move(s);
        return obd::Status::ok();
      },
      [result](Napi::Env env) -> Napi::Value {
        auto ext = Napi::External<ServerPtr>::New(env, result.get());
        return get_ctor(env, "NativeUblkDevice").New({ext});
      });
}

void init_ublk(Napi::Env env, Napi::Object exports) {
  set_ctor(env, "NativeUblkDevice", UblkDeviceWrap::define(env));
  exports.Set("ublkServe", Napi::Function::New(env, ublk_serve, "ublkServe"));
  exports.Set("NativeUblkDevice", get_ctor(env, "NativeUblkDevice"));
}

Registrar reg("ublk", init_ublk);

}  // namespace
}  // namespace obdjs
