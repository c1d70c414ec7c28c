// User-space ext4: mkfs and layer apply on a raw image file or an overlaybd
// image (lowers + writable upper). Progress reaches JS through a
// thread-safe function the worker never waits on.
#include <sys/stat.h>

#include <memory>

#include "common.h"
#include "archive/digest_stream.h"
#include "ext4/apply.h"
#include "ext4/mkfs.h"
#include "image/image.h"
#include "image_spec.h"
#include "image_wrap.h"

namespace obdjs {
namespace {

using obd::Result;
using obd::Status;
namespace ext4 = obd::ext4;

// A device description copied off the JS object: { raw }, an image spec, or
// { image } (an open image, e.g. one with remote lowers from the image service).
struct DeviceArg {
  std::string raw;
  obd::ImageSpec spec;
  obd::ImagePtr image;
};

DeviceArg device_from(const Napi::Object& o) {
  DeviceArg d;
  if (o.Has("image")) {
    d.image = unwrap_image(o.Get("image"));
    if (!d.image) throw_status(o.Env(), obd::Status(obd::Code::kEINVAL, "device.image: not an open image"));
    return d;
  }
  d.raw = opt_path(o, "raw");
  if (d.raw.empty()) d.spec = image_spec_from(o);
  return d;
}

// Opens the device; a raw file is created or resized to `size` when given
// (mkfs of a new raw image).
Result<obd::FilePtr> open_device(const DeviceArg& d, uint64_t size) {
  if (d.image) {
    if (!d.image->writable()) return Status(obd::Code::kEINVAL, "the image has no writable upper layer to apply onto");
    return obd::FilePtr(d.image);
  }
  if (d.raw.empty()) {
    if (!d.spec.upper) return Status(obd::Code::kEINVAL, "the image has no writable upper layer to apply onto");
    OBD_ASSIGN_OR_RETURN(obd::ImagePtr img, obd::open_image(d.spec));
    return obd::FilePtr(img);
  }
  struct stat st;
  bool exists = ::stat(d.raw.c_str(), &st) == 0;
  OBD_ASSIGN_OR_RETURN(obd::FilePtr f,
                       obd::open_local(d.raw, exists ? obd::OpenMode::kReadWrite : obd::OpenMode::kCreateExclusive));
  if (size) {
    OBD_ASSIGN_OR_RETURN(uint64_t cur, f->size());
    if (cur != size) OBD_TRY(f->truncate(size));
  } else if (!exists) {
    return Status(obd::Code::kEINVAL, d.raw + ": a new raw image needs a size (vsizeGB)");
  }
  return f;
}

ext4::MkfsOptions mkfs_options(const Napi::Object& o) {
  ext4::MkfsOptions m;
  m.seed = opt_string(o, "seed");
  m.journal = opt_bool(o, "journal", true);
  m.label = opt_string(o, "label");
  return m;
}

ext4::FsOptions fs_options(const Napi::Object& o) {
  ext4::FsOptions f;
  f.now = int64_t(opt_u64(o, "timestamp"));
  f.sync = opt_bool(o, "sync", true);
  uint64_t cache = opt_u64(o, "cacheMB");
  if (cache) f.channel.cache_bytes = size_t(cache) << 20;
  return f;
}

// mkfs(device, { vsize?, seed?, timestamp?, journal?, label?, sync? })
Napi::Value mkfs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object dev = arg_object(info, 0, "device");
  Napi::Object o = arg_object(info, 1, "options");
  if (env.IsExceptionPending()) return env.Undefined();
  DeviceArg d = device_from(dev);
  if (env.IsExceptionPending()) return env.Undefined();
  uint64_t vsize = opt_u64(o, "vsize");
  ext4::MkfsOptions m = mkfs_options(o);
  m.fs = fs_options(o);
  return run_async(env, "obd.ext4.mkfs", [=]() -> Status {
    OBD_ASSIGN_OR_RETURN(obd::FilePtr f, open_device(d, vsize));
    return ext4::mkfs(f, m);
  });
}

struct ProgressMsg {
  ext4::ApplyProgress p;
};

// Runs on the JS thread; env is null when the environment is going away.
// Nothing may throw out of here (the TS callback already catches).
void deliver_progress(Napi::Env env, Napi::Function cb, ProgressMsg* msg) {
  std::unique_ptr<ProgressMsg> m(msg);
  if (!env || !cb) return;
  try {
    Napi::Object o = Napi::Object::New(env);
    o.Set("inputBytes", Napi::Number::New(env, double(m->p.input_bytes)));
    o.Set("tarBytes", Napi::Number::New(env, double(m->p.tar_bytes)));
    o.Set("entries", Napi::Number::New(env, double(m->p.entries)));
    o.Set("done", Napi::Boolean::New(env, m->p.done));
    cb.Call({o});
  } catch (...) {
  }
  if (env.IsExceptionPending()) env.GetAndClearPendingException();
}

// Owns the progress function and releases it exactly once, whichever way the
// work ends (error, exception, or the job dropped unrun at teardown): the
// last shared owner going away is the release.
class Progress {
 public:
  explicit Progress(Napi::ThreadSafeFunction fn) : fn_(fn) {}
  ~Progress() { fn_.Release(); }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  void report(const ext4::ApplyProgress& p) {
    auto* msg = new ProgressMsg{p};
    if (fn_.NonBlockingCall(msg, deliver_progress) != napi_ok) delete msg;
  }

 private:
  Napi::ThreadSafeFunction fn_;
};

// A layer read from a pipe JS feeds: { fd, digest?, diffId?, what? }. The
// read end is owned from here on, so it is closed whatever happens next.
struct StreamInput {
  std::shared_ptr<obd::ByteStreamPtr> fd_stream;
  obd::LayerDigests want;
  std::string what;
};

StreamInput stream_input(const Napi::Object& o) {
  StreamInput in;
  int fd = int(opt_u64(o, "fd"));
  in.what = opt_string(o, "what", "layer");
  in.fd_stream = std::make_shared<obd::ByteStreamPtr>(obd::make_fd_stream(fd, in.what, true));
  in.want.digest = opt_string(o, "digest");
  in.want.diff_id = opt_string(o, "diffId");
  return in;
}

// applyLayer(device, input: path | { fd, digest?, diffId?, what? }, { mkfs?, vsize?, seed?, timestamp?, journal?, sync? }, onProgress?)
Napi::Value apply_layer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // A streamed input is taken first: its descriptor must be owned even when a later argument is bad.
  bool streamed = info.Length() > 1 && info[1].IsObject();
  StreamInput sin;
  if (streamed) sin = stream_input(info[1].As<Napi::Object>());
  Napi::Object dev = arg_object(info, 0, "device");
  std::string input = streamed ? std::string() : arg_string(info, 1, "input");
  Napi::Object o = arg_object(info, 2, "options");
  if (env.IsExceptionPending()) return env.Undefined();
  DeviceArg d = device_from(dev);
  if (env.IsExceptionPending()) return env.Undefined();
  bool do_mkfs = opt_bool(o, "mkfs");
  uint64_t vsize = do_mkfs ? opt_u64(o, "vsize") : 0;
  ext4::ApplyOptions a;
  a.mkfs = do_mkfs;
  a.mkfs_opts = mkfs_options(o);
  a.fs = fs_options(o);
  std::shared_ptr<Progress> progress;
  if (info.Length() > 3 && info[3].IsFunction()) {
    // Queue of 8: when JS lags, reports are dropped rather than waited for.
    progress = std::make_shared<Progress>(
        Napi::ThreadSafeFunction::New(env, info[3].As<Napi::Function>(), "obd.ext4.progress", 8, 1));
  }
  auto result = std::make_shared<ext4::ApplyResult>();
  // The job drops this lambda (and `progress` with it) right after it runs.
  auto work = [=]() -> Status {
    ext4::ApplyOptions opts = a;
    if (progress) opts.on_progress = [progress](const ext4::ApplyProgress& p) { progress->report(p); };
    OBD_ASSIGN_OR_RETURN(obd::FilePtr f, open_device(d, vsize));
    if (!streamed) {
      OBD_ASSIGN_OR_RETURN(*result, ext4::apply_layer(f, input, opts));
      return Status::ok();
    }
    // The work runs once: it takes the pipe's read end from the holder.
    OBD_ASSIGN_OR_RETURN(obd::ByteStreamPtr tar,
                         obd::make_verified_layer_stream(std::move(*sin.fd_stream), sin.want, sin.what));
    OBD_ASSIGN_OR_RETURN(*result, ext4::apply_layer(f, std::move(tar), opts));
    return Status::ok();
  };
  auto done = [result](Napi::Env env) -> Napi::Value {
    Napi::Object o = Napi::Object::New(env);
    auto n = [&](const char* k, uint64_t v) { o.Set(k, Napi::Number::New(env, double(v))); };
    n("entries", result->entries);
    n("tarBytes", result->tar_bytes);
    n("inputBytes", result->input_bytes);
    n("files", result->files);
    n("dirs", result->dirs);
    n("symlinks", result->symlinks);
    n("hardlinks", result->hardlinks);
    n("specials", result->specials);
    n("whiteouts", result->whiteouts);
    n("bytesWritten", result->io.bytes_written);
    n("bytesRead", result->io.bytes_read);
    return o;
  };
  // A streamed apply waits on JS for its bytes: on its own thread, not the pool.
  if (streamed) return run_on_thread(env, "obd.ext4.applyLayer", work, done);
  return run_async(env, "obd.ext4.applyLayer", work, done);
}

void init_ext4(Napi::Env env, Napi::Object exports) {
  exports.Set("ext4Mkfs", Napi::Function::New(env, mkfs, "ext4Mkfs"));
  exports.Set("ext4ApplyLayer", Napi::Function::New(env, apply_layer, "ext4ApplyLayer"));
}

static Registrar reg("ext4", init_ext4);

}  // namespace
}  // namespace obdjs
