// Layer-level operations: create, commit, seal, inspect, and the cleanup of
// pending outputs a CLI signal handler runs.
#include "common.h"
#include "ext4/mkfs.h"
#include "image/image.h"
#include "info_js.h"
#include "layer/inspect.h"
#include "layer/ops.h"
#include "layer/pending_file.h"
#include "lsmt/rw_layer.h"

namespace obdjs {
namespace {

using obd::Status;
namespace lsmt = obd::lsmt;

// Parses an optional UUID field; reports EINVAL naming the field.
bool opt_uuid(Napi::Env env, const Napi::Object& o, const char* key, std::optional<lsmt::Uuid>* out) {
  std::string s = opt_string(o, key);
  if (s.empty()) return true;
  auto u = lsmt::parse_uuid(s);
  if (!u) {
    throw_status(env, u.status().with_context(key));
    return false;
  }
  *out = u.value();
  return true;
}

// Makes an ext4 filesystem on a new layer's files (default mkfs options).
Status mkfs_new_layer(const std::string& data, const std::string& index) {
  obd::ImageSpec spec;
  spec.upper = obd::UpperSpec{data, index};
  OBD_ASSIGN_OR_RETURN(obd::ImagePtr img, obd::open_image(spec));
  OBD_TRY(obd::ext4::mkfs(img, obd::ext4::MkfsOptions{}));
  return img->sync();
}

// createLayer({ data, index, virtualSize, sparse?, uuid?, parentUuid?, mkfs? })
Napi::Value create_layer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, 0, "options");
  if (env.IsExceptionPending()) return env.Undefined();
  lsmt::CreateOptions c;
  c.virtual_size = opt_u64(o, "virtualSize");
  c.sparse = opt_bool(o, "sparse");
  std::optional<lsmt::Uuid> uuid, parent;
  if (!opt_uuid(env, o, "uuid", &uuid) || !opt_uuid(env, o, "parentUuid", &parent)) return env.Undefined();
  if (uuid) c.uuid = *uuid;
  if (parent) c.parent_uuid = *parent;
  std::string data = opt_path(o, "data"), index = opt_path(o, "index");
  if (env.IsExceptionPending()) return env.Undefined();
  obd::layer::LayerInit init = opt_bool(o, "mkfs") ? mkfs_new_layer : obd::layer::LayerInit();
  return run_async(env, "obd.createLayer", [=] { return obd::layer::create_layer(data, index, c, init); });
}

// commitLayer({ data, index?, sealed?: bool, out, uuid?, parentUuid?, message?,
//               zfile?: { algorithm, blockSize, threads }, tar?, force?, sync? })
Napi::Value commit_layer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, 0, "options");
  if (env.IsExceptionPending()) return env.Undefined();
  lsmt::CommitOptions c;
  if (!opt_uuid(env, o, "uuid", &c.uuid) || !opt_uuid(env, o, "parentUuid", &c.parent_uuid)) return env.Undefined();
  c.user_tag = opt_string(o, "message");
  obd::layer::CommitOutput out;
  out.path = opt_path(o, "out");
  out.tar = opt_bool(o, "tar");
  out.force = opt_bool(o, "force");
  out.sync = opt_bool(o, "sync", true);
  Napi::Value z = o.Get("zfile");
  if (z.IsObject()) {
    out.zfile = zfile_options_from(z.As<Napi::Object>());
    out.zfile->overwrite_header = true;  // as overlaybd-commit -z
  }
  std::string data = opt_path(o, "data"), index = opt_path(o, "index");
  if (env.IsExceptionPending()) return env.Undefined();
  bool sealed = opt_bool(o, "sealed");
  return run_async(env, "obd.commitLayer", [=]() -> Status {
    if (sealed) return obd::layer::commit_sealed_layer(*obd::layer::local_opener(), {data}, c, out);
    return obd::layer::commit_rw_layer(data, index, c, out);
  });
}

// sealLayer(data, index)
Napi::Value seal_layer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string data = arg_string(info, 0, "data");
  std::string index = info[1].IsString() ? arg_string(info, 1, "index") : "";
  if (env.IsExceptionPending()) return env.Undefined();
  return run_async(env, "obd.sealLayer", [=] { return obd::layer::seal_rw_layer(data, index); });
}

Napi::Object record_to_js(Napi::Env env, const lsmt::Record& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("flags", r.flags);
  o.Set("indexOffset", double(r.index_offset));
  o.Set("indexSize", double(r.index_size));
  o.Set("virtualSize", double(r.virtual_size));
  o.Set("uuid", lsmt::uuid_to_string(r.uuid));
  o.Set("parentUuid", lsmt::uuid_to_string(r.parent_uuid));
  o.Set("version", r.version);
  o.Set("subVersion", r.sub_version);
  o.Set("userTag", r.user_tag);
  return o;
}

Napi::Value inspection_to_js(Napi::Env env, const obd::layer::LayerInspection& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("tar", tar_info_js(env, r.tar));
  if (r.zfile) o.Set("zfile", zfile_info_js(env, *r.zfile));
  o.Set("lsmtSize", double(r.lsmt_size));
  o.Set("header", record_to_js(env, r.header));
  if (r.trailer) o.Set("trailer", record_to_js(env, *r.trailer));
  o.Set("paddingEntries", double(r.padding_entries));
  Napi::Array a = Napi::Array::New(env, r.entries.size());
  for (size_t i = 0; i < r.entries.size(); i++) {
    const auto& s = r.entries[i];
    Napi::Object e = Napi::Object::New(env);
    e.Set("offset", double(s.offset));
    e.Set("length", s.length);
    e.Set("moffset", double(s.moffset));
    e.Set("zeroed", s.zeroed ? 1 : 0);
    e.Set("tag", s.tag);
    a.Set(uint32_t(i), e);
  }
  o.Set("entries", a);
  return o;
}

// inspectLayer(path) -> Promise<object>
Napi::Value inspect_layer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = arg_string(info, 0, "path");
  if (env.IsExceptionPending()) return env.Undefined();
  auto result = std::make_shared<obd::layer::LayerInspection>();
  return run_async(
      env, "obd.inspectLayer",
      [path, result]() -> Status {
        OBD_ASSIGN_OR_RETURN(*result, obd::layer::inspect(*obd::layer::local_opener(), {path}));
        return Status::ok();
      },
      [result](Napi::Env env) { return inspection_to_js(env, *result); });
}

// removePendingOutputs() -> number: synchronously deletes every output still
// being written (temporaries) and refuses new ones; for signal handlers.
Napi::Value remove_pending_outputs(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(obd::layer::remove_pending_files()));
}

void init_layer(Napi::Env env, Napi::Object exports) {
  exports.Set("removePendingOutputs", Napi::Function::New(env, remove_pending_outputs));
  exports.Set("createLayer", Napi::Function::New(env, create_layer));
  exports.Set("commitLayer", Napi::Function::New(env, commit_layer));
  exports.Set("sealLayer", Napi::Function::New(env, seal_layer));
  exports.Set("inspectLayer", Napi::Function::New(env, inspect_layer));
}

Registrar reg("layer", init_layer);

}  // namespace
}  // namespace obdjs
