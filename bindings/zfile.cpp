// ZFile tools for JavaScript: compress, decompress, verify, info. Options are
// validated by lib/zfile.ts; here they are only copied into plain structs and
// the work runs on the libuv pool.
#include <unistd.h>

#include <memory>
#include <vector>

#include "common.h"
#include "info_js.h"
#include "layer/blob.h"
#include "layer/output.h"
#include "zfile/convert.h"
#include "zfile/reader.h"

namespace obdjs {
namespace {

// zfileCompress(src, dst, { algorithm, blockSize, verify, overwriteHeader, threads, tar, force })
Napi::Value zfile_compress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string src = arg_string(info, 0, "src");
  std::string dst = arg_string(info, 1, "dst");
  Napi::Object o = arg_object(info, 2, "options");
  if (env.IsExceptionPending()) return env.Undefined();
  obd::layer::OutputSpec out{dst, zfile_options_from(o), opt_bool(o, "tar"), opt_bool(o, "force")};
  auto result = std::make_shared<std::pair<uint64_t, uint64_t>>();  // raw size, file size
  return run_async(
      env, "obd.zfile.compress",
      [=]() -> obd::Status {
        OBD_ASSIGN_OR_RETURN(obd::FilePtr in, obd::open_local(src, obd::OpenMode::kRead));
        OBD_ASSIGN_OR_RETURN(result->first, in->size());
        OBD_ASSIGN_OR_RETURN(result->second, obd::layer::write_output(out, [&](obd::Sink& s) { return obd::copy_to_sink(*in, s); }));
        return obd::Status::ok();
      },
      [result](Napi::Env env) -> Napi::Value {
        Napi::Object r = Napi::Object::New(env);
        r.Set("rawSize", Napi::Number::New(env, double(result->first)));
        r.Set("size", Napi::Number::New(env, double(result->second)));
        return r;
      });
}

// Opens a blob as the layer module does, without decompressing: the ZFile
// inside an optional tar wrapper.
obd::Result<obd::layer::OpenedBlob> open_wrapped(const std::string& path) {
  return obd::layer::open_blob(*obd::layer::local_opener(), {path}, false);
}

Napi::Value zfile_decompress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string src = arg_string(info, 0, "src");
  std::string dst = arg_string(info, 1, "dst");
  bool force = info.Length() > 2 && info[2].IsObject() && opt_bool(info[2].As<Napi::Object>(), "force", false);
  if (env.IsExceptionPending()) return env.Undefined();
  auto size = std::make_shared<uint64_t>(0);
  return run_async(
      env, "obd.zfile.decompress",
      [=]() -> obd::Status {
        OBD_ASSIGN_OR_RETURN(auto in, open_wrapped(src));
        // A bad input fails inside; the partial output is removed then.
        OBD_ASSIGN_OR_RETURN(*size, obd::layer::write_file_atomically(dst, force, [&](obd::FilePtr f) {
          return obd::zfile_decompress(*in.payload, f);
        }));
        return obd::Status::ok();
      },
      [size](Napi::Env env) -> Napi::Value {
        Napi::Object r = Napi::Object::New(env);
        r.Set("size", Napi::Number::New(env, double(*size)));
        return r;
      });
}

Napi::Value zfile_verify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = arg_string(info, 0, "path");
  if (env.IsExceptionPending()) return env.Undefined();
  return run_async(env, "obd.zfile.verify", [=]() -> obd::Status {
    OBD_ASSIGN_OR_RETURN(auto in, open_wrapped(path));
    return obd::zfile_verify(*in.payload);
  });
}

Napi::Value zfile_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = arg_string(info, 0, "path");
  if (env.IsExceptionPending()) return env.Undefined();
  struct Out {
    obd::tar::WrapInfo tar;
    obd::ZFileInfo z;
  };
  auto out = std::make_shared<Out>();
  return run_async(
      env, "obd.zfile.info",
      [=]() -> obd::Status {
        OBD_ASSIGN_OR_RETURN(auto in, open_wrapped(path));
        out->tar = in.tar;
        OBD_ASSIGN_OR_RETURN(out->z, obd::zfile_info(*in.payload));
        return obd::Status::ok();
      },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Object r = zfile_info_js(env, out->z);
        r.Set("tar", tar_info_js(env, out->tar));
        return r;
      });
}

// An opened ZFile: random reads of its decompressed content. Reads may run
// concurrently on the pool; close() waits for them, then releases the file.
class ZFileWrap final : public Napi::ObjectWrap<ZFileWrap>, public Closable {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "NativeZFile",
                       {InstanceMethod<&ZFileWrap::read>("read", kMethod), InstanceMethod<&ZFileWrap::close>("close", kMethod),
                        InstanceAccessor<&ZFileWrap::size>("size")});
  }
  explicit ZFileWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ZFileWrap>(info), Closable(info.Env()) {
    if (info.Length() == 2 && info[0].IsExternal()) {
      file_ = *info[0].As<Napi::External<obd::FilePtr>>().Data();
      size_ = uint64_t(info[1].As<Napi::Number>().Int64Value());
    } else {
      life_->mark_closed();
    }
  }

  void release() override {
    life_->mark_closed();
    file_.reset();
  }

 private:
  bool check_open(Napi::Env env) { return life_->check_open(env, "ZFile"); }
  Napi::Value size(const Napi::CallbackInfo& info) {
    if (!check_open(info.Env())) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), double(size_));
  }

  // read(offset, length) -> Promise<Buffer> (short only at the end).
  Napi::Value read(const Napi::CallbackInfo& info) {
    if (!check_open(info.Env())) return info.Env().Undefined();
    return promise_read(info, file_, "obd.zfile.read", life_);
  }

  // close() -> Promise<void>: settles once the reads in flight have and the
  // file is closed.
  Napi::Value close(const Napi::CallbackInfo& info) {
    obd::FilePtr f = std::move(file_);
    return life_->close(info.Env(), "obd.zfile.close", [f]() mutable {
      f.reset();
      return obd::Status::ok();
    });
  }

  obd::FilePtr file_;
  uint64_t size_ = 0;
};

// zfileOpen(path) -> Promise<NativeZFile>; the path may be tar-wrapped.
Napi::Value zfile_open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = arg_string(info, 0, "path");
  if (env.IsExceptionPending()) return env.Undefined();
  auto result = std::make_shared<obd::FilePtr>();
  auto size = std::make_shared<uint64_t>(0);
  return run_async(
      env, "obd.zfile.open",
      [path, result, size]() -> obd::Status {
        OBD_ASSIGN_OR_RETURN(auto in, obd::layer::open_blob(*obd::layer::local_opener(), {path}));
        // Not a ZFile: let the ZFile reader say what is wrong with it.
        if (!in.zfile) return obd::open_zfile(in.payload).status();
        *result = in.content;
        OBD_ASSIGN_OR_RETURN(*size, (*result)->size());
        return obd::Status::ok();
      },
      [result, size](Napi::Env env) -> Napi::Value {
        auto ext = Napi::External<obd::FilePtr>::New(env, result.get());
        return get_ctor(env, "NativeZFile").New({ext, Napi::Number::New(env, double(*size))});
      });
}

void init_zfile(Napi::Env env, Napi::Object exports) {
  set_ctor(env, "NativeZFile", ZFileWrap::define(env));
  exports.Set("NativeZFile", get_ctor(env, "NativeZFile"));  // lib/native.ts wraps its methods
  exports.Set("zfileOpen", Napi::Function::New(env, zfile_open, "zfileOpen"));
  exports.Set("zfileCompress", Napi::Function::New(env, zfile_compress, "zfileCompress"));
  exports.Set("zfileDecompress", Napi::Function::New(env, zfile_decompress, "zfileDecompress"));
  exports.Set("zfileVerify", Napi::Function::New(env, zfile_verify, "zfileVerify"));
  exports.Set("zfileInfo", Napi::Function::New(env, zfile_info, "zfileInfo"));
}

static obdjs::Registrar reg("zfile", init_zfile);

}  // namespace
}  // namespace obdjs
