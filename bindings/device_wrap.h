// What the three device bindings (FUSE export, TCMU device, ublk device)
// share: an object owning one frontend handle that serves an image on
// native threads, closed on the pool (or at once when the environment goes
// away), and the async start that builds it from a NativeImage.
#pragma once
#include <memory>
#include <type_traits>
#include <utility>

#include "common.h"
#include "device/image_device.h"
#include "image_wrap.h"

namespace obdjs {

// Closes a frontend handle whether its close() reports a Status or not.
template <typename Handle>
obd::Status close_handle(Handle& h) {
  if constexpr (std::is_same_v<decltype(h.close()), obd::Status>) {
    return h.close();
  } else {
    h.close();
    return obd::Status::ok();
  }
}

// Base of a device wrap: constructed (by serve_image only) from an External
// holding the handle; any other construction makes a closed object.
template <typename Handle>
class DeviceWrap : public Closable {
 public:
  using HandlePtr = std::shared_ptr<Handle>;

  // Environment teardown: stop serving now rather than leave a device whose
  // I/O nobody serves (or a dead FUSE mount).
  void release() override {
    life_->mark_closed();
    if (handle_) (void)close_handle(*handle_);
    handle_.reset();
  }

 protected:
  explicit DeviceWrap(const Napi::CallbackInfo& info) : Closable(info.Env()) {
    if (info.Length() == 1 && info[0].IsExternal()) {
      handle_ = *info[0].As<Napi::External<HandlePtr>>().Data();
    } else {
      life_->mark_closed();
    }
  }

  // close() -> Promise<void>: the handle stops serving and joins its threads on the pool.
  Napi::Value close_handle_async(Napi::Env env, const char* name) {
    HandlePtr h = std::move(handle_);
    return life_->close(env, name, [h]() mutable -> obd::Status {
      obd::Status s = h ? close_handle(*h) : obd::Status::ok();
      h.reset();
      return s;
    });
  }

  HandlePtr handle_;
};

// (nativeImage, ...) -> Promise<ctor>: `start(std::shared_ptr<BlockDevice>)`
// runs on the pool and returns Result<std::unique_ptr<Handle>>; the handle
// is wrapped in the class registered as `ctor` (a DeviceWrap<Handle>).
template <typename Handle, typename Start>
Napi::Value serve_image(const Napi::CallbackInfo& info, const char* name, const char* ctor, Start start) {
  Napi::Env env = info.Env();
  obd::ImagePtr img = unwrap_image(info[0]);
  if (!img) {
    throw_status(env, obd::Status(obd::Code::kEINVAL, "argument 0 (image) must be an open NativeImage"));
    return env.Undefined();
  }
  auto result = std::make_shared<std::shared_ptr<Handle>>();
  return run_async(
      env, name,
      [img, start = std::move(start), result]() mutable -> obd::Status {
        OBD_ASSIGN_OR_RETURN(auto h, start(obd::make_image_device(std::move(img))));
        *result = std::move(h);
        return obd::Status::ok();
      },
      [result, ctor](Napi::Env env) -> Napi::Value {
        auto ext = Napi::External<std::shared_ptr<Handle>>::New(env, result.get());
        return get_ctor(env, ctor).New({ext});
      });
}

}  // namespace obdjs
