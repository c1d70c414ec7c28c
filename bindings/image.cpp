// The Image object: an opened layer stack with promise-returning block I/O.
// Each call copies its arguments, keeps the image alive through a shared_ptr
// and runs on the libuv pool; close() only drops this object's reference.
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "common.h"
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
    return run_async(env, "obd.image.dump", [img, fd]() -> obd::Status { return dump_to_fd(*img, fd); });
  }

  static obd::Status dump_to_fd(obd::Image& img, int fd) {
    struct stat st;
    if (::fstat(fd, &st) != 0) return obd::Status::from_errno(errno, "fstat fd " + std::to_string(fd));
    const uint64_t size = img.virtual_size();
    const bool sparse = S_ISREG(st.st_mode);
    std::vector<obd::Extent> extents{{0, size}};
    if (sparse) {
      if (::ftruncate(fd, 0) != 0 || ::ftruncate(fd, off_t(size)) != 0)
        return obd::Status::from_errno(errno, "truncate the dump file");
      OBD_ASSIGN_OR_RETURN(extents, img.data_extents(0));
    }
    constexpr size_t kChunk = 4 << 20;
    std::vector<uint8_t> buf(kChunk);
    for (const obd::Extent& e : extents) {
      for (uint64_t off = e.off, end = std::min(e.off + e.len, size); off < end;) {
        size_t n = size_t(std::min<uint64_t>(kChunk, end - off));
        OBD_ASSIGN_OR_RETURN(size_t got, img.pread(buf.data(), n, off));
        if (got != n) return obd::Status(obd::Code::kINTERNAL, "short read of the image at " + std::to_string(off));
        for (size_t w = 0; w < n;) {
          ssize_t r = sparse ? ::pwrite(fd, buf.data() + w, n - w, off_t(off + w)) : ::write(fd, buf.data() + w, n - w);
          if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {  // Node leaves stdout pipes non-blocking: wait until writable
              pollfd p{fd, POLLOUT, 0};
              ::poll(&p, 1, -1);
              continue;
            }
            return obd::Status::from_errno(errno, "write the dump at " + std::to_string(off + w));
          }
          w += size_t(r);
        }
        off += n;
      }
    }
    return obd::Status::ok();
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
