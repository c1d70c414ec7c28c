#include "info_js.h"

#include "common.h"

namespace obdjs {
namespace {

Napi::Object record_js(Napi::Env env, const obd::zfile::Record& r) {
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

}  // namespace

Napi::Object tar_info_js(Napi::Env env, const obd::tar::WrapInfo& t) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("wrapped", t.wrapped);
  o.Set("pax", t.pax);
  o.Set("payloadOffset", double(t.payload_offset));
  o.Set("payloadSize", double(t.payload_size));
  return o;
}

Napi::Object zfile_info_js(Napi::Env env, const obd::ZFileInfo& z) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("header", record_js(env, z.header));
  o.Set("trailer", record_js(env, z.trailer));
  o.Set("headerOverwritten", z.header_overwritten);
  o.Set("algorithm", obd::zfile::algorithm_name(z.algo));
  o.Set("verify", z.verify);
  o.Set("fileSize", double(z.file_size));
  o.Set("blockSize", double(z.block_size));
  o.Set("blocks", double(z.nblocks));
  o.Set("originalSize", double(z.original_size));
  o.Set("indexOffset", double(z.index_offset));
  o.Set("maxStoredBlock", double(z.max_stored_block));
  return o;
}

obd::ZFileOptions zfile_options_from(const Napi::Object& o) {
  obd::ZFileOptions z;
  z.algorithm = opt_string(o, "algorithm", "lz4") == "zstd" ? obd::zfile::Algorithm::kZstd : obd::zfile::Algorithm::kLz4;
  z.block_size = uint32_t(opt_u64(o, "blockSize", 4096));
  z.verify = opt_bool(o, "verify", true);
  z.overwrite_header = opt_bool(o, "overwriteHeader", false);
  z.threads = unsigned(opt_u64(o, "threads", 1));
  return z;
}

}  // namespace obdjs
