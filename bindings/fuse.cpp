// The FUSE export object: an open image served as one file on a FUSE mount
// (cpp/frontend/fuse). Requests run on libfuse's threads, never on this
// event loop; close() unmounts and joins them on the pool.
#include "device_wrap.h"
#include "frontend/fuse/fuse_export.h"

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

void init_fuse(Napi::Env env, Napi::Object exports) {
  set_ctor(env, "NativeFuseExport", FuseExportWrap::define(env));
  exports.Set("fuseExport", Napi::Function::New(env, fuse_export, "fuseExport"));
  exports.Set("NativeFuseExport", get_ctor(env, "NativeFuseExport"));
}

Registrar reg("fuse", init_fuse);

}  // namespace
}  // namespace obdjs
