// The TCMU device object: an open image served on a target_core_user UIO
// ring (cpp/frontend/tcmu) by a native thread, never by this event loop;
// close() stops the thread and unmaps the ring on the pool. Also the
// cfgstring and UIO name parsers, so TypeScript does not repeat them.
#include "device_wrap.h"
#include "frontend/tcmu/cfgstring.h"
#include "frontend/tcmu/device.h"

namespace obdjs {
namespace {

namespace ft = obd::frontend::tcmu;

class TcmuDeviceWrap final : public Napi::ObjectWrap<TcmuDeviceWrap>, public DeviceWrap<ft::Device> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "NativeTcmuDevice",
                       {InstanceMethod<&TcmuDeviceWrap::close>("close", kMethod),
                        InstanceAccessor<&TcmuDeviceWrap::uio_name>("uioName"),
                        InstanceAccessor<&TcmuDeviceWrap::running>("running"),
                        InstanceAccessor<&TcmuDeviceWrap::ring_reset>("ringReset"),
                        InstanceAccessor<&TcmuDeviceWrap::error>("error")});
  }

  explicit TcmuDeviceWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TcmuDeviceWrap>(info), DeviceWrap(info) {
    if (handle_) {
      name_ = handle_->uio_name();
      ring_reset_ = handle_->ring_reset();
    }
  }

 private:
  Napi::Value uio_name(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), name_); }

  // False once the kernel removed the device or the ring broke (see error).
  Napi::Value running(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), handle_ && handle_->running());
  }

  // Whether serving began with a ring reset (a takeover with commands left).
  Napi::Value ring_reset(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), ring_reset_); }

  // Why the device stopped by itself, or null.
  Napi::Value error(const Napi::CallbackInfo& info) {
    if (!handle_) return info.Env().Null();
    obd::Status s = handle_->error();
    if (s) return info.Env().Null();
    return make_error(info.Env(), s).Value();
  }

  // close() -> Promise<void>: joins the ring thread, unmaps, closes the UIO fd.
  Napi::Value close(const Napi::CallbackInfo& info) { return close_handle_async(info.Env(), "obd.tcmu.close"); }

  std::string name_;
  bool ring_reset_ = false;
};

// tcmuServe(nativeImage, uio, {serial?, depth?, workers?}) -> Promise<NativeTcmuDevice>
Napi::Value tcmu_serve(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ft::DeviceOptions o;
  o.uio = arg_string(info, 1, "uio");
  if (env.IsExceptionPending()) return env.Undefined();
  if (info.Length() > 2 && info[2].IsObject()) {
    Napi::Object opts = info[2].As<Napi::Object>();
    o.serial = opt_string(opts, "serial");
    o.depth = unsigned(opt_u64(opts, "depth", o.depth));
    o.workers = unsigned(opt_u64(opts, "workers", o.workers));
    if (env.IsExceptionPending()) return env.Undefined();
  }
  return serve_image<ft::Device>(info, "obd.tcmuServe", "NativeTcmuDevice",
                                 [o](std::shared_ptr<obd::BlockDevice> dev) { return ft::start_device(std::move(dev), o); });
}

// tcmuParseUioName(name) -> {hba, device, cfgstring, configPath, devId}; EINVAL
// when the UIO device is not target_core_user's or not an overlaybd one.
Napi::Value tcmu_parse_uio_name(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = arg_string(info, 0, "name");
  if (env.IsExceptionPending()) return env.Undefined();
  auto parts = ft::parse_uio_name(name);
  if (!parts) {
    throw_status(env, parts.status());
    return env.Undefined();
  }
  auto cfg = ft::parse_cfgstring(parts->cfgstring);
  if (!cfg) {
    throw_status(env, cfg.status());
    return env.Undefined();
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("hba", parts->hba);
  o.Set("device", parts->device);
  o.Set("cfgstring", parts->cfgstring);
  o.Set("configPath", cfg->config_path);
  o.Set("devId", cfg->dev_id);
  return o;
}

void init_tcmu(Napi::Env env, Napi::Object exports) {
  set_ctor(env, "NativeTcmuDevice", TcmuDeviceWrap::define(env));
  exports.Set("tcmuServe", Napi::Function::New(env, tcmu_serve, "tcmuServe"));
  exports.Set("tcmuParseUioName", Napi::Function::New(env, tcmu_parse_uio_name, "tcmuParseUioName"));
  exports.Set("NativeTcmuDevice", get_ctor(env, "NativeTcmuDevice"));
}

Registrar reg("tcmu", init_tcmu);

}  // namespace
}  // namespace obdjs
