// N-API glue shared by every binding file: error mapping, promise-returning
// async work on the libuv pool, argument helpers, and module registration.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "io/file.h"

namespace obdjs {

// Builds an OverlaybdError (the class lib/errors.ts registers) from a Status.
Napi::Error make_error(Napi::Env env, const obd::Status& s);
// Throws a JS OverlaybdError (synchronous paths).
void throw_status(Napi::Env env, const obd::Status& s);

// Runs `work` off the JS thread, then `done` on it to build the resolved value.
// `work` must not touch JS values; copy inputs into the lambda first. The
// lambda is destroyed on the pool right after it runs, so the references it
// holds (images, files) are dropped before the promise settles. Completion
// never throws: in an environment that is shutting down it only cleans up.
using Work = std::function<obd::Status()>;
using Done = std::function<Napi::Value(Napi::Env)>;
class Lifetime;
using LifetimePtr = std::shared_ptr<Lifetime>;
// With `life`, the call counts as in flight on that object until it settles.
Napi::Promise run_async(Napi::Env env, const char* name, Work work, Done done, LifetimePtr life = nullptr);
// Resolves with undefined.
Napi::Promise run_async(Napi::Env env, const char* name, Work work, LifetimePtr life = nullptr);

// As run_async, on a thread of its own: for work that blocks on input JS
// feeds (a pipe), which on the pool could starve the pool the feeder needs.
Napi::Promise run_on_thread(Napi::Env env, const char* name, Work work, Done done);

struct Job;
// The open/closed state of a native object with close() and the count of its
// calls in flight. Used on the JS thread only, so it needs no lock; closing
// never blocks a pool thread (the final job is queued by the last call out).
class Lifetime {
 public:
  ~Lifetime();
  // Throws CLOSED naming `what` once the object is closed.
  bool check_open(Napi::Env env, const char* what) const;
  // Marks the object closed; the promise settles after every call queued
  // before has settled and then `finish` (flush, drop the last reference)
  // has run on the pool. lib/ hands a second close() the first promise;
  // here a second close only resolves at once.
  Napi::Promise close(Napi::Env env, const char* name, Work finish);
  // Environment teardown: closed, no final job.
  void mark_closed() { closed_ = true; }

 private:
  friend struct Job;
  void begin() { in_flight_++; }
  void end();

  bool closed_ = false;
  size_t in_flight_ = 0;
  Job* pending_close_ = nullptr;  // queued when in_flight_ drops to 0
};

// Attributes of a native class's methods: lib/native.ts wraps them in place.
constexpr napi_property_attributes kMethod = static_cast<napi_property_attributes>(napi_writable | napi_configurable);

// Base of every wrap with close() (Image, ZFile reader). It joins its
// environment's set of live objects so that a worker or process exiting with
// objects open releases them (napi_add_env_cleanup_hook) instead of leaving
// their files to a finalizer that may never run.
class Closable {
 public:
  explicit Closable(Napi::Env env);
  virtual ~Closable();
  Closable(const Closable&) = delete;
  Closable& operator=(const Closable&) = delete;
  // Drops the native resources now: the environment is going away.
  virtual void release() = 0;

 protected:
  LifetimePtr life_ = std::make_shared<Lifetime>();

 private:
  std::shared_ptr<std::set<Closable*>> live_;
};

// read(offset, length) on any File: a promise of a Buffer holding the bytes
// read (short only at the file's end). Lengths above 1 GiB are refused.
Napi::Value promise_read(const Napi::CallbackInfo& info, std::shared_ptr<obd::File> file, const char* name,
                         LifetimePtr life = nullptr);
// The bytes of any ArrayBufferView (Buffer, typed array, DataView) copied
// into a vector; EINVAL naming the argument otherwise.
bool arg_bytes(const Napi::CallbackInfo& info, size_t i, const char* what, std::vector<uint8_t>* out);

// Argument helpers: throw an OverlaybdError EINVAL naming the argument on mismatch.
// Strings reach C APIs (paths), where a NUL byte would cut them: refused.
std::string arg_string(const Napi::CallbackInfo& info, size_t i, const char* what);
// An optional path field of an options object; a NUL byte throws EINVAL
// naming `what` (default: the key).
std::string opt_path(const Napi::Object& o, const char* key, const char* what = nullptr);
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
