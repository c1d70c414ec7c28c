// ZFile tools for JavaScript: compress, decompress, verify, info. Options are
// validated by lib/zfile.ts; here they are only copied into plain structs and
// the work runs on the libuv pool.
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <vector>

#include "common.h"
#include "tar/tar_wrapper.h"
#include "zfile/convert.h"
#include "zfile/reader.h"

namespace obdjs {
namespace {

struct OutputOpts {
  bool force = false;
};

// Creates the output; an existing file is an EEXIST error unless forced.
obd::Result<obd::FilePtr> create_output(const std::string& path, const OutputOpts& o) {
  return obd::open_local(path, o.force ? obd::OpenMode::kCreateTruncate : obd::OpenMode::kCreateExclusive);
}

// A failed conversion must not leave a half-written file that looks valid.
obd::Status cleanup_on_error(obd::Status s, const std::string& path) {
  if (!s.is_ok()) ::unlink(path.c_str());
  return s;
}

Napi::Value zfile_compress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string src = arg_string(info, 0, "src");
  std::string dst = arg_string(info, 1, "dst");
  Napi::Object o = arg_object(info, 2, "options");
  if (env.IsExceptionPending()) return env.Undefined();
  obd::ZFileOptions zo;
  zo.algorithm = opt_string(o, "algorithm", "lz4") == "zstd" ? obd::zfile::Algorithm::kZstd : obd::zfile::Algorithm::kLz4;
  zo.block_size = uint32_t(opt_u64(o, "blockSize", 4096));
  zo.verify = opt_bool(o, "verify", true);
  zo.overwrite_header = opt_bool(o, "overwriteHeader", false);
  zo.threads = unsigned(opt_u64(o, "threads", 1));
  bool tar = opt_bool(o, "tar", false);
  OutputOpts out{opt_bool(o, "force", false)};
  auto result = std::make_shared<std::pair<uint64_t, uint64_t>>();  // raw size, file size
  return run_async(
      env, "obd.zfile.compress",
      [=]() -> obd::Status {
        OBD_TRY(obd::validate_options(zo));
        OBD_ASSIGN_OR_RETURN(obd::FilePtr in, obd::open_local(src, obd::OpenMode::kRead));
        OBD_ASSIGN_OR_RETURN(result->first, in->size());
        OBD_ASSIGN_OR_RETURN(obd::FilePtr outf, create_output(dst, out));
        auto work = [&]() -> obd::Status {
          obd::FilePtr target = outf;
          if (tar) {
            OBD_ASSIGN_OR_RETURN(target, obd::tar_wrap_begin(outf));
          }
          OBD_ASSIGN_OR_RETURN(uint64_t zsize, obd::zfile_compress(*in, target, zo));
          if (tar) {
            struct stat st;
            if (::stat(dst.c_str(), &st) != 0) return obd::Status::from_errno(errno, "stat " + dst);
            OBD_TRY(obd::tar_wrap_finish(outf, zsize, st.st_mode));
          }
          OBD_TRY(outf->sync());
          OBD_ASSIGN_OR_RETURN(result->second, outf->size());
          return obd::Status::ok();
        };
        return cleanup_on_error(work(), dst);
      },
      [result](Napi::Env env) -> Napi::Value {
        Napi::Object r = Napi::Object::New(env);
        r.Set("rawSize", Napi::Number::New(env, double(result->first)));
        r.Set("size", Napi::Number::New(env, double(result->second)));
        return r;
      });
}

// Opens the ZFile inside an optional tar wrapper.
obd::Result<obd::FilePtr> open_wrapped(const std::string& path) {
  OBD_ASSIGN_OR_RETURN(obd::FilePtr f, obd::open_local(path, obd::OpenMode::kRead));
  return obd::unwrap_tar(std::move(f));
}

Napi::Value zfile_decompress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string src = arg_string(info, 0, "src");
  std::string dst = arg_string(info, 1, "dst");
  OutputOpts out;
  if (info.Length() > 2 && info[2].IsObject()) out.force = opt_bool(info[2].As<Napi::Object>(), "force", false);
  if (env.IsExceptionPending()) return env.Undefined();
  auto size = std::make_shared<uint64_t>(0);
  return run_async(
      env, "obd.zfile.decompress",
      [=]() -> obd::Status {
        OBD_ASSIGN_OR_RETURN(obd::FilePtr in, open_wrapped(src));
        // Validate before creating the output, so a bad input leaves nothing behind.
        OBD_ASSIGN_OR_RETURN(obd::FilePtr z, obd::open_zfile(in));
        OBD_ASSIGN_OR_RETURN(*size, z->size());
        OBD_ASSIGN_OR_RETURN(obd::FilePtr outf, create_output(dst, out));
        obd::Status s = obd::zfile_decompress(*in, outf);
        if (s.is_ok()) s = outf->sync();
        return cleanup_on_error(s, dst);
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
    OBD_ASSIGN_OR_RETURN(obd::FilePtr in, open_wrapped(path));
    return obd::zfile_verify(*in);
  });
}

Napi::Object record_object(Napi::Env env, const obd::zfile::Record& r) {
  Napi::Object o = Napi::Object::New(env);
  auto num = [&](const char* k, uint64_t v) { o.Set(k, Napi::Number::New(env, double(v))); };
  num("size", r.size);
  num("digest", r.digest);
  num("flags", r.flags);
  num("indexOffset", r.index_offset);
  num("indexSize", r.index_size);
  num("originalFileSize", r.original_file_size);
  num("indexCrc", r.index_crc);
  num("blockSize", r.block_size);
  num("algo", r.algo);
  num("level", r.level);
  num("useDict", r.use_dict);
  num("dictSize", r.dict_size);
  num("verify", r.verify);
  return o;
}

Napi::Value zfile_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = arg_string(info, 0, "path");
  if (env.IsExceptionPending()) return env.Undefined();
  struct Out {
    obd::TarWrapInfo tar;
    obd::ZFileInfo z;
  };
  auto out = std::make_shared<Out>();
  return run_async(
      env, "obd.zfile.info",
      [=]() -> obd::Status {
        OBD_ASSIGN_OR_RETURN(obd::FilePtr f, obd::open_local(path, obd::OpenMode::kRead));
        OBD_ASSIGN_OR_RETURN(out->tar, obd::probe_tar(*f));
        OBD_ASSIGN_OR_RETURN(obd::FilePtr payload, obd::unwrap_tar(f));
        OBD_ASSIGN_OR_RETURN(out->z, obd::zfile_info(*payload));
        return obd::Status::ok();
      },
      [out](Napi::Env env) -> Napi::Value {
        const obd::ZFileInfo& z = out->z;
        Napi::Object r = Napi::Object::New(env);
        auto num = [&](const char* k, uint64_t v) { r.Set(k, Napi::Number::New(env, double(v))); };
        Napi::Object tar = Napi::Object::New(env);
        tar.Set("wrapped", Napi::Boolean::New(env, out->tar.wrapped));
        tar.Set("pax", Napi::Boolean::New(env, out->tar.pax));
        tar.Set("payloadOffset", Napi::Number::New(env, double(out->tar.payload_offset)));
        tar.Set("payloadSize", Napi::Number::New(env, double(out->tar.payload_size)));
        r.Set("tar", tar);
        r.Set("header", record_object(env, z.header));
        r.Set("trailer", record_object(env, z.trailer));
        r.Set("headerOverwritten", Napi::Boolean::New(env, z.header_overwritten));
        r.Set("algorithm", Napi::String::New(env, obd::zfile::algorithm_name(z.algo)));
        r.Set("verify", Napi::Boolean::New(env, z.verify));
        num("fileSize", z.file_size);
        num("blockSize", z.block_size);
        num("blocks", z.nblocks);
        num("originalSize", z.original_size);
        num("indexOffset", z.index_offset);
        num("maxStoredBlock", z.max_stored_block);
        return r;
      });
}

// An opened ZFile: random reads of its decompressed content. Reads may run
// concurrently on the pool; close() drops this object's reference only.
class ZFileWrap final : public Napi::ObjectWrap<ZFileWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "NativeZFile",
                       {InstanceMethod<&ZFileWrap::read>("read"), InstanceMethod<&ZFileWrap::close>("close"),
                        InstanceAccessor<&ZFileWrap::size>("size")});
  }
  explicit ZFileWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ZFileWrap>(info) {
    if (info.Length() == 2 && info[0].IsExternal()) {
      file_ = *info[0].As<Napi::External<obd::FilePtr>>().Data();
      size_ = uint64_t(info[1].As<Napi::Number>().Int64Value());
    }
  }

 private:
  bool check_open(Napi::Env env) {
    if (file_) return true;
    throw_status(env, obd::Status(obd::Code::kEINVAL, "ZFile is closed"));
    return false;
  }
  Napi::Value size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(size_)); }

  // read(offset, length) -> Promise<Buffer> (short only at the end).
  Napi::Value read(const Napi::CallbackInfo& info) {
    if (!check_open(info.Env())) return info.Env().Undefined();
    return promise_read(info, file_, "obd.zfile.read");
  }

  Napi::Value close(const Napi::CallbackInfo& info) {
    file_.reset();
    return info.Env().Undefined();
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
        OBD_ASSIGN_OR_RETURN(obd::FilePtr in, open_wrapped(path));
        OBD_ASSIGN_OR_RETURN(*result, obd::open_zfile(in));
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
  exports.Set("zfileOpen", Napi::Function::New(env, zfile_open, "zfileOpen"));
  exports.Set("zfileCompress", Napi::Function::New(env, zfile_compress, "zfileCompress"));
  exports.Set("zfileDecompress", Napi::Function::New(env, zfile_decompress, "zfileDecompress"));
  exports.Set("zfileVerify", Napi::Function::New(env, zfile_verify, "zfileVerify"));
  exports.Set("zfileInfo", Napi::Function::New(env, zfile_info, "zfileInfo"));
}

static obdjs::Registrar reg("zfile", init_zfile);

}  // namespace
}  // namespace obdjs
