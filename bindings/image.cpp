// The Image object: an opened layer stack with promise-returning block I/O.
// Each call copies its arguments, keeps the image alive through a shared_ptr
// and runs on the libuv pool, counted in flight until it settles; close()
// waits for those, then flushes and releases the image.

#include <cstring>

#include "common.h"
#include "image/dump.h"
#include "image/image.h"
#include "image_spec.h"
#include "image_wrap.h"
#include "service/service_image.h"

namespace obdjs {
namespace {

Napi::Value prefetch_stats_js(Napi::Env env, const obd::trace::PrefetchStats& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("reads", double(s.reads));
  o.Set("bytes", double(s.bytes));
  o.Set("errors", double(s.errors));
  return o;
}

class ImageWrap final : public Napi::ObjectWrap<ImageWrap>, public Closable {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "NativeImage",
                       {InstanceMethod<&ImageWrap::read>("read", kMethod), InstanceMethod<&ImageWrap::write>("write", kMethod),
                        InstanceMethod<&ImageWrap::discard>("discard", kMethod), InstanceMethod<&ImageWrap::flush>("flush", kMethod),
                        InstanceMethod<&ImageWrap::close>("close", kMethod), InstanceMethod<&ImageWrap::dump>("dump", kMethod),
                        InstanceMethod<&ImageWrap::prefetch>("prefetch", kMethod),
                        InstanceMethod<&ImageWrap::prefetch_files>("prefetchFiles", kMethod),
                        InstanceMethod<&ImageWrap::download_states>("downloadStates", kMethod),
                        InstanceMethod<&ImageWrap::wait_downloads>("waitDownloads", kMethod),
                        InstanceMethod<&ImageWrap::finish_recording>("finishRecording", kMethod),
                        InstanceMethod<&ImageWrap::snapshot>("snapshot", kMethod),
                        InstanceAccessor<&ImageWrap::size>("size"),
                        InstanceAccessor<&ImageWrap::writable>("writable")});
  }

  explicit ImageWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ImageWrap>(info), Closable(info.Env()) {
    // Constructed only by openImage with an External holding the image.
    if (info.Length() == 1 && info[0].IsExternal())
      image_ = *info[0].As<Napi::External<obd::ImagePtr>>().Data();
    else
      life_->mark_closed();
  }

  void release() override {
    life_->mark_closed();
    image_.reset();
  }

  const obd::ImagePtr& image() const { return image_; }

 private:
  bool check_open(Napi::Env env) { return life_->check_open(env, "image"); }

  Napi::Value size(const Napi::CallbackInfo& info) {
    if (!check_open(info.Env())) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), double(image_->virtual_size()));
  }
  Napi::Value writable(const Napi::CallbackInfo& info) {
    if (!check_open(info.Env())) return info.Env().Undefined();
    return Napi::Boolean::New(info.Env(), image_->writable());
  }

  // read(offset, length) -> Promise<Buffer>
  Napi::Value read(const Napi::CallbackInfo& info) {
    if (!check_open(info.Env())) return info.Env().Undefined();
    return promise_read(info, image_, "obd.image.read", life_);
  }

  // write(bytes, offset) -> Promise<void>; any ArrayBufferView, copied first.
  Napi::Value write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check_open(env)) return env.Undefined();
    auto data = std::make_shared<std::vector<uint8_t>>();
    if (!arg_bytes(info, 0, "data", data.get())) return env.Undefined();
    uint64_t off = arg_u64(info, 1, "offset");
    if (env.IsExceptionPending()) return env.Undefined();
    auto img = image_;
    return run_async(
        env, "obd.image.write", [img, data, off] { return img->pwrite(data->data(), data->size(), off); }, life_);
  }

  Napi::Value discard(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check_open(env)) return env.Undefined();
    uint64_t off = arg_u64(info, 0, "offset");
    uint64_t len = arg_u64(info, 1, "length");
    if (env.IsExceptionPending()) return env.Undefined();
    auto img = image_;
    return run_async(env, "obd.image.discard", [img, off, len] { return img->punch_hole(off, len); }, life_);
  }

  Napi::Value flush(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check_open(env)) return env.Undefined();
    auto img = image_;
    return run_async(env, "obd.image.flush", [img] { return img->sync(); }, life_);
  }

  // dump(fd) -> Promise<void>: writes the whole device to a file descriptor.
  // A regular file gets only the extents that may hold data (it stays
  // sparse); a pipe gets every byte.
  Napi::Value dump(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check_open(env)) return env.Undefined();
    uint64_t fd = arg_u64(info, 0, "fd");
    if (env.IsExceptionPending()) return env.Undefined();
    if (fd > uint64_t(INT32_MAX)) {  // an int cast would wrap (2**32 + 2 became stderr)
      throw_status(env, obd::Status(obd::Code::kEINVAL, "argument 0 (fd) must be a file descriptor (0 to 2^31-1)"));
      return env.Undefined();
    }
    auto img = image_;
    return run_async(
        env, "obd.image.dump", [img, fd]() -> obd::Status { return obd::dump_image(*img, int(fd)); }, life_);
  }

  // The image service's extras; an image opened without the service has
  // nothing to prefetch or download.
  std::shared_ptr<obd::service::ServiceImage> service_image() const {
    return std::dynamic_pointer_cast<obd::service::ServiceImage>(image_);
  }

  // prefetch() -> Promise<{ reads, bytes, errors }>: runs (or waits for) the
  // prefetch of the image's trace or file list.
  Napi::Value prefetch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check_open(env)) return env.Undefined();
    auto img = service_image();
    auto stats = std::make_shared<obd::trace::PrefetchStats>();
    return run_async(
        env, "obd.image.prefetch",
        [img, stats]() -> obd::Status {
          if (!img) return obd::Status::ok();
          OBD_ASSIGN_OR_RETURN(*stats, img->prefetch());
          return obd::Status::ok();
        },
        [stats](Napi::Env env) { return prefetch_stats_js(env, *stats); }, life_);
  }

  // prefetchFiles(paths, concurrency) -> Promise<{ reads, bytes, errors }>:
  // reads the data of files found through the image's ext4 filesystem (a
  // trailing '/' or '*' means a whole tree), as the file-list prefetch does.
  Napi::Value prefetch_files(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check_open(env)) return env.Undefined();
    std::vector<std::string> paths;
    if (info.Length() < 1 || !info[0].IsArray()) {
      throw_status(env, obd::Status(obd::Code::kEINVAL, "argument 0 (paths) must be an array of paths"));
      return env.Undefined();
    }
    Napi::Array a = info[0].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) paths.push_back(a.Get(i).ToString().Utf8Value());
    unsigned conc = unsigned(arg_u64(info, 1, "concurrency"));
    if (env.IsExceptionPending()) return env.Undefined();
    auto img = image_;
    auto stats = std::make_shared<obd::trace::PrefetchStats>();
    return run_async(
        env, "obd.image.prefetchFiles",
        [img, paths, conc, stats]() -> obd::Status {
          OBD_ASSIGN_OR_RETURN(*stats, obd::trace::prefetch_paths(img, paths, conc ? conc : 1));
          return obd::Status::ok();
        },
        [stats](Napi::Env env) { return prefetch_stats_js(env, *stats); }, life_);
  }

  // downloadStates() -> string[]: one per background download job.
  Napi::Value download_states(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check_open(env)) return env.Undefined();
    auto img = service_image();
    static const char* names[] = {"waiting", "running", "done", "failed", "cancelled"};
    Napi::Array a = Napi::Array::New(env);
    if (img) {
      auto states = img->download_states();
      for (size_t i = 0; i < states.size(); i++) a.Set(uint32_t(i), names[int(states[i])]);
    }
    return a;
  }

  // waitDownloads(ms) -> Promise<boolean>: true once every job has finished.
  Napi::Value wait_downloads(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check_open(env)) return env.Undefined();
    uint64_t ms = arg_u64(info, 0, "milliseconds");
    if (env.IsExceptionPending()) return env.Undefined();
    auto img = service_image();
    auto finished = std::make_shared<bool>(true);
    return run_async(
        env, "obd.image.waitDownloads",
        [img, ms, finished]() -> obd::Status {
          if (img) *finished = img->wait_downloads(std::chrono::milliseconds(ms));
          return obd::Status::ok();
        },
        [finished](Napi::Env env) -> Napi::Value { return Napi::Boolean::New(env, *finished); }, life_);
  }

  // finishRecording() -> Promise<void>: writes a trace being recorded now.
  Napi::Value finish_recording(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check_open(env)) return env.Undefined();
    auto img = service_image();
    return run_async(
        env, "obd.image.finishRecording", [img] { return img ? img->finish_recording() : obd::Status::ok(); }, life_);
  }

  // snapshot(data, index) -> Promise<void>: seals the upper under live I/O
  // and continues on the new upper (§6.6); index is '' for a sparse upper.
  Napi::Value snapshot(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!check_open(env)) return env.Undefined();
    obd::UpperSpec next{arg_string(info, 0, "data"), arg_string(info, 1, "index")};
    if (env.IsExceptionPending()) return env.Undefined();
    auto img = image_;
    return run_async(env, "obd.image.snapshot", [img, next] { return img->snapshot(next); }, life_);
  }

  // close() -> Promise<void>: waits for the calls in flight, flushes a
  // writable upper and closes the files (the last reference drops on the pool).
  Napi::Value close(const Napi::CallbackInfo& info) {
    obd::ImagePtr img = std::move(image_);
    return life_->close(info.Env(), "obd.image.close", [img]() mutable -> obd::Status {
      obd::Status s = img && img->writable() ? img->sync() : obd::Status::ok();
      img.reset();
      return s;
    });
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

}  // namespace

obd::ImagePtr unwrap_image(const Napi::Value& v) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(get_ctor(v.Env(), "NativeImage"))) return nullptr;
  return ImageWrap::Unwrap(v.As<Napi::Object>())->image();
}

namespace {

void init_image(Napi::Env env, Napi::Object exports) {
  set_ctor(env, "NativeImage", ImageWrap::define(env));
  exports.Set("openImage", Napi::Function::New(env, open_image));
  exports.Set("NativeImage", get_ctor(env, "NativeImage"));  // lib/native.ts wraps its methods
}

Registrar reg("image", init_image);

}  // namespace
}  // namespace obdjs
