// The Image object: an opened layer stack with promise-returning block I/O.
// Each call copies its arguments, keeps the image alive through a shared_ptr
// and runs on the libuv pool; close() only drops this object's reference.

#include <cstring>

#include "common.h"
#include "image/dump.h"
#include "image/image.h"
#include "image_spec.h"

namespace obdjs {
namespace {

class ImageWrap final : public Napi::ObjectWrap<ImageWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "NativeImage",
                       {InstanceMethod<&ImageWrap::read>("read"), InstanceMethod<&ImageWrap::write>("write"),
                        InstanceMethod<&ImageWrap::discard>("discard"), InstanceMethod<&ImageWrap::flush>("flush"),
                        InstanceMethod<&ImageWrap::close>("close"), InstanceMethod<&ImageWrap::dump>("dump"),
                        InstanceAccessor<&ImageWrap::size>("size"),
                        InstanceAccessor<&ImageWrap::writable>("writable")});
  }

  explicit ImageWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ImageWrap>(info) {
    // Constructed only by openImage with an External holding the image.
    if (info.Length() == 1 && info[0].IsExternal())
      image_ = *info[0].As<Napi::External<obd::ImagePtr>>().Data();
  }

 private:
  bool check_open(Napi::Env env) {
    if (image_) return true;
    throw_status(env, obd::Status(obd::Code::kEINVAL, "image is closed"));
    return false;
  }

  Napi::Value size(const Napi::CallbackInfo& info) {
    if (!check_open(info.Env())) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), double(image_->virtual_size()));
  }
  Napi::Value writable(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), image_ && image_->writable());
  }

  // read(offset, length) -> Promise<Buffer>
  Napi::Value read(const Napi::CallbackInfo& info) {
    if (!check_open(info.Env())) return info.Env().Undefined();
    return promise_read(info, image_, "obd.image.read");
  }

  // write(buffer, offset) -> Promise<void>; the buffer is copied first.
  Napi::Value write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check_open(env)) return env.Undefined();
    if (!info[0].IsBuffer()) {
      throw_status(env, obd::Status(obd::Code::kEINVAL, "write expects a Buffer"));
      return env.Undefined();
    }
    auto b = info[0].As<Napi::Buffer<uint8_t>>();
    auto data = std::make_shared<std::vector<uint8_t>>(b.Data(), b.Data() + b.Length());
    uint64_t off = arg_u64(info, 1, "offset");
    if (env.IsExceptionPending()) return env.Undefined();
    auto img = image_;
    return run_async(env, "obd.image.write", [img, data, off] { return img->pwrite(data->data(), data->size(), off); });
  }

  Napi::Value discard(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check_open(env)) return env.Undefined();
    uint64_t off = arg_u64(info, 0, "offset");
    uint64_t len = arg_u64(info, 1, "length");
    if (env.IsExceptionPending()) return env.Undefined();
    auto img = image_;
    return run_async(env, "obd.image.discard", [img, off, len] { return img->punch_hole(off, len); });
  }

  Napi::Value flush(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check_open(env)) return env.Undefined();
    auto img = image_;
    return run_async(env, "obd.image.flush", [img] { return img->sync(); });
  }

  // dump(fd) -> Promise<void>: writes the whole device to a file descriptor.
  // A regular file gets only the extents that may hold data (it stays
  // sparse); a pipe gets every byte.
  Napi::Value dump(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check_open(env)) return env.Undefined();
    int fd = int(arg_u64(info, 0, "fd"));
    if (env.IsExceptionPending()) return env.Undefined();
    auto img = image_;
    return run_async(env, "obd.image.dump", [img, fd]() -> obd::Status { return obd::dump_image(*img, fd); });
  }

  Napi::Value close(const Napi::CallbackInfo& info) {
    image_.reset();
    return info.Env().Undefined();
  }

  obd::ImagePtr image_;
};

// openImage(spec) -> Promise<NativeImage>
Napi::Value open_image(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  obd::ImageSpec spec = image_spec_from(arg_object(info, 0, "spec"));
  if (env.IsExceptionPending()) return env.Undefined();
  auto result = std::make_shared<obd::ImagePtr>();
  return run_async(
      env, "obd.openImage",
      [spec, result]() -> obd::Status {
        OBD_ASSIGN_OR_RETURN(*result, obd::open_image(spec));
        return obd::Status::ok();
      },
      [result](Napi::Env env) -> Napi::Value {
        auto ext = Napi::External<obd::ImagePtr>::New(env, result.get());
        return get_ctor(env, "NativeImage").New({ext});
      });
}

void init_image(Napi::Env env, Napi::Object exports) {
  set_ctor(env, "NativeImage", ImageWrap::define(env));
  exports.Set("openImage", Napi::Function::New(env, open_image));
}

Registrar reg("image", init_image);

}  // namespace
}  // namespace obdjs
