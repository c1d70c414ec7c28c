// The FUSE export object: an open image served as one file on a FUSE mount
// (cpp/frontend/fuse). Requests run on libfuse's threads, never on this
// event loop; close() unmounts and joins them on the pool.
#include "common.h"
#include "device/image_device.h"
#include "frontend/fuse/fuse_export.h"
#include "image_wrap.h"

namespace obdjs {
namespace {

namespace ff = obd::frontend::fuse;
using ExportPtr = std::shared_ptr<ff::Export>;

class FuseExportWrap final : public Napi::ObjectWrap<FuseExportWrap>, public Closable {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "NativeFuseExport",
                       {InstanceMethod<&FuseExportWrap::close>("close", kMethod),
                        InstanceAccessor<&FuseExportWrap::file>("file")});
  }

  explicit FuseExportWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FuseExportWrap>(info), Closable(info.Env()) {
    if (info.Length() == 1 && info[0].IsExternal()) {
      export_ = *info[0].As<Napi::External<ExportPtr>>().Data();
      file_ = export_->file();
    } else {
      life_->mark_closed();
    }
  }

  // Environment teardown: unmount now rather than leave a dead mount behind.
  void release() override {
    life_->mark_closed();
    if (export_) export_->close();
    export_.reset();
  }

 private:
  Napi::Value file(const Napi::CallbackInfo& info) {
    if (!life_->check_open(info.Env(), "FUSE export")) return info.Env().Undefined();
    return Napi::String::New(info.Env(), file_);
  }

  // close() -> Promise<void>: unmounts, joins the session threads, closes the device.
  Napi::Value close(const Napi::CallbackInfo& info) {
    ExportPtr x = std::move(export_);
    return life_->close(info.Env(), "obd.fuse.close", [x]() mutable -> obd::Status {
      if (x) x->close();
      x.reset();
      return obd::Status::ok();
    });
  }

  ExportPtr export_;
  std::string file_;
};

// fuseExport(nativeImage, mountDir) -> Promise<NativeFuseExport>
Napi::Value fuse_export(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  obd::ImagePtr img = unwrap_image(info[0]);
  if (!img) {
    throw_status(env, obd::Status(obd::Code::kEINVAL, "argument 0 (image) must be an open NativeImage"));
    return env.Undefined();
  }
  std::string dir = arg_string(info, 1, "mountDir");
  if (env.IsExceptionPending()) return env.Undefined();
  auto result = std::make_shared<ExportPtr>();
  return run_async(
      env, "obd.fuseExport",
      [img, dir, result]() mutable -> obd::Status {
        std::shared_ptr<obd::BlockDevice> dev = obd::make_image_device(std::move(img));
        OBD_ASSIGN_OR_RETURN(auto x, ff::start_export(std::move(dev), dir));
        *result = std::move(x);
        return obd::Status::ok();
      },
      [result](Napi::Env env) -> Napi::Value {
        auto ext = Napi::External<ExportPtr>::New(env, result.get());
        return get_ctor(env, "NativeFuseExport").New({ext});
      });
}

void init_fuse(Napi::Env env, Napi::Object exports) {
  set_ctor(env, "NativeFuseExport", FuseExportWrap::define(env));
  exports.Set("fuseExport", Napi::Function::New(env, fuse_export, "fuseExport"));
  exports.Set("NativeFuseExport", get_ctor(env, "NativeFuseExport"));
}

Registrar reg("fuse", init_fuse);

}  // namespace
}  // namespace obdjs
