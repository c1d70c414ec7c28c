// The FUSE export object: an open image served as one file on a FUSE mount
// (cpp/frontend/fuse). Requests run on libfuse's threads, never on this
// event loop; close() unmounts and joins them on the pool.
#include "device_wrap.h"
#include "frontend/fuse/fuse_export.h"
#include "frontend/fuse/loop_device.h"

namespace obdjs {
namespace {

namespace ff = obd::frontend::fuse;

class FuseExportWrap final : public Napi::ObjectWrap<FuseExportWrap>, public DeviceWrap<ff::Export> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "NativeFuseExport",
                       {InstanceMethod<&FuseExportWrap::close>("close", kMethod),
                        InstanceAccessor<&FuseExportWrap::file>("file")});
  }

  explicit FuseExportWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FuseExportWrap>(info), DeviceWrap(info) {
    if (handle_) file_ = handle_->file();
  }

 private:
  Napi::Value file(const Napi::CallbackInfo& info) {
    if (!life_->check_open(info.Env(), "FUSE export")) return info.Env().Undefined();
    return Napi::String::New(info.Env(), file_);
  }

  // close() -> Promise<void>: unmounts, joins the session threads, closes the device.
  Napi::Value close(const Napi::CallbackInfo& info) { return close_handle_async(info.Env(), "obd.fuse.close"); }

  std::string file_;
};

// fuseExport(nativeImage, mountDir) -> Promise<NativeFuseExport>
Napi::Value fuse_export(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string dir = arg_string(info, 1, "mountDir");
  if (env.IsExceptionPending()) return env.Undefined();
  return serve_image<ff::Export>(info, "obd.fuseExport", "NativeFuseExport",
                                 [dir](std::shared_ptr<obd::BlockDevice> dev) { return ff::start_export(std::move(dev), dir); });
}

// loopAttach(file, { readOnly, directIo }) -> Promise<string>: the /dev/loopN bound to file.
Napi::Value loop_attach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string file = arg_string(info, 0, "file");
  Napi::Object o = info.Length() > 1 ? arg_object(info, 1, "options") : Napi::Object::New(env);
  if (env.IsExceptionPending()) return env.Undefined();
  ff::LoopOptions opts{opt_bool(o, "readOnly", false), opt_bool(o, "directIo", true)};
  auto dev = std::make_shared<std::string>();
  return run_async(
      env, "obd.loopAttach",
      [file, opts, dev]() -> obd::Status {
        OBD_ASSIGN_OR_RETURN(*dev, ff::loop_attach(file, opts));
        return obd::Status::ok();
      },
      [dev](Napi::Env e) -> Napi::Value { return Napi::String::New(e, *dev); });
}

// loopDetach(device) -> Promise<void>
Napi::Value loop_detach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string dev = arg_string(info, 0, "device");
  if (env.IsExceptionPending()) return env.Undefined();
  return run_async(env, "obd.loopDetach", [dev]() { return ff::loop_detach(dev); });
}

void init_fuse(Napi::Env env, Napi::Object exports) {
  set_ctor(env, "NativeFuseExport", FuseExportWrap::define(env));
  exports.Set("fuseExport", Napi::Function::New(env, fuse_export, "fuseExport"));
  exports.Set("NativeFuseExport", get_ctor(env, "NativeFuseExport"));
  exports.Set("loopAttach", Napi::Function::New(env, loop_attach, "loopAttach"));
  exports.Set("loopDetach", Napi::Function::New(env, loop_detach, "loopDetach"));
}

Registrar reg("fuse", init_fuse);

}  // namespace
}  // namespace obdjs
