// Project quotas for the snapshotter's rootfs directories (cpp/quota): each
// call is a few syscalls, run off the event loop like every other.
#include "common.h"
#include "quota/project_quota.h"

namespace obdjs {
namespace {

namespace oq = obd::quota;

// Reads argument i as a project ID; false (with a pending exception) if it is not one.
bool arg_project(const Napi::CallbackInfo& info, size_t i, uint32_t* out) {
  uint64_t id = arg_u64(info, i, "projectId");
  if (info.Env().IsExceptionPending()) return false;
  if (id > UINT32_MAX) {
    throw_status(info.Env(), obd::Status(obd::Code::kEINVAL, "projectId " + std::to_string(id) + " is not a 32-bit ID"));
    return false;
  }
  *out = uint32_t(id);
  return true;
}

// setProjectQuota(dir, projectId, bytes) -> Promise<void>
Napi::Value set_project_quota(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string dir = arg_string(info, 0, "dir");
  uint64_t bytes = arg_u64(info, 2, "bytes");
  uint32_t id = 0;
  if (env.IsExceptionPending() || !arg_project(info, 1, &id)) return env.Undefined();
  return run_async(env, "obd.setProjectQuota", [dir, id, bytes]() { return oq::set_project_quota(dir, id, bytes); });
}

// clearProjectLimit(path, projectId) -> Promise<void>
Napi::Value clear_project_limit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = arg_string(info, 0, "path");
  uint32_t id = 0;
  if (env.IsExceptionPending() || !arg_project(info, 1, &id)) return env.Undefined();
  return run_async(env, "obd.clearProjectLimit", [path, id]() { return oq::clear_project_limit(path, id); });
}

// projectId(path) -> Promise<number>
Napi::Value project_id(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = arg_string(info, 0, "path");
  if (env.IsExceptionPending()) return env.Undefined();
  auto id = std::make_shared<uint32_t>(0);
  return run_async(
      env, "obd.projectId",
      [path, id]() -> obd::Status {
        OBD_ASSIGN_OR_RETURN(*id, oq::project_id(path));
        return obd::Status::ok();
      },
      [id](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, *id); });
}

void init_quota(Napi::Env env, Napi::Object exports) {
  exports.Set("setProjectQuota", Napi::Function::New(env, set_project_quota, "setProjectQuota"));
  exports.Set("clearProjectLimit", Napi::Function::New(env, clear_project_limit, "clearProjectLimit"));
  exports.Set("projectId", Napi::Function::New(env, project_id, "projectId"));
}

Registrar reg("quota", init_quota);

}  // namespace
}  // namespace obdjs
