// N-API glue shared by every binding file: error mapping, promise-returning
// async work on the libuv pool, argument helpers, and module registration.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "io/file.h"

namespace obdjs {

// Builds an OverlaybdError (the class lib/errors.ts registers) from a Status.
Napi::Error make_error(Napi::Env env, const obd::Status& s);
// Throws a JS OverlaybdError (synchronous paths).
void throw_status(Napi::Env env, const obd::Status& s);

// Runs `work` off the JS thread, then `done` on it to build the resolved value.
// `work` must not touch JS values; copy inputs into the lambda first.
using Work = std::function<obd::Status()>;
using Done = std::function<Napi::Value(Napi::Env)>;
Napi::Promise run_async(Napi::Env env, const char* name, Work work, Done done);
// Resolves with undefined.
Napi::Promise run_async(Napi::Env env, const char* name, Work work);

// read(offset, length) on any File: a promise of a Buffer holding the bytes
// read (short only at the file's end). Lengths above 1 GiB are refused.
Napi::Value promise_read(const Napi::CallbackInfo& info, std::shared_ptr<obd::File> file, const char* name);

// Argument helpers: throw a JS TypeError (EINVAL) and return false on mismatch.
std::string arg_string(const Napi::CallbackInfo& info, size_t i, const char* what);
uint64_t arg_u64(const Napi::CallbackInfo& info, size_t i, const char* what);
Napi::Object arg_object(const Napi::CallbackInfo& info, size_t i, const char* what);
// Optional fields of an options object (validated in TypeScript already).
std::string opt_string(const Napi::Object& o, const char* key, const std::string& dflt = "");
uint64_t opt_u64(const Napi::Object& o, const char* key, uint64_t dflt = 0);
bool opt_bool(const Napi::Object& o, const char* key, bool dflt = false);

// Class constructors kept per environment (ObjectWrap classes made once).
void set_ctor(Napi::Env env, const std::string& name, Napi::Function ctor);
Napi::Function get_ctor(Napi::Env env, const std::string& name);

// Each binding file registers an init function with a static Registrar:
//   static obdjs::Registrar reg("zfile", init_zfile);
using InitFn = void (*)(Napi::Env, Napi::Object exports);
struct Registrar {
  Registrar(const char* name, InitFn fn);
};

}  // namespace obdjs
