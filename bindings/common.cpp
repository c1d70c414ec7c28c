#include "common.h"

#include <time.h>

#include <map>
#include <set>
#include <thread>
#include <vector>

namespace obdjs {
namespace {

struct Registered {
  const char* name;
  InitFn fn;
};
std::vector<Registered>& registry() {
  static std::vector<Registered> r;
  return r;
}

// Per-environment state: the OverlaybdError constructor set by lib/native.ts,
// the class constructors and the live objects with close().
struct EnvData {
  Napi::FunctionReference error_ctor;
  std::map<std::string, Napi::FunctionReference> ctors;
  std::shared_ptr<std::set<Closable*>> live = std::make_shared<std::set<Closable*>>();
};

EnvData* env_data(Napi::Env env) { return env.GetInstanceData<EnvData>(); }

// Environment teardown (worker exit, process exit): every object still open
// drops its files now. Calls still running hold their own references and
// release them when they finish.
void release_live(void* arg) {
  auto* d = static_cast<EnvData*>(arg);
  for (Closable* c : *d->live) c->release();
}

Napi::Value set_error_class(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) {
    Napi::TypeError::New(info.Env(), "setErrorClass expects a constructor").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  env_data(info.Env())->error_ctor = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

}  // namespace

// One queued call: the pool runs `run`, the JS thread settles the promise.
// Built on the C API so that completion can check every status and never
// throw into an environment that is shutting down (napi_pending_exception,
// napi_cannot_run_js), which Napi::AsyncWorker does.
struct Job {
  napi_env env = nullptr;
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  Work run;
  Done done;
  obd::Status status;
  LifetimePtr life;

  ~Job() {
    if (work) napi_delete_async_work(env, work);
  }

  static void execute(napi_env, void* data) {
    Job* j = static_cast<Job*>(data);
    try {
      j->status = j->run();
    } catch (const std::bad_alloc&) {
      j->status = obd::Status(obd::Code::kINTERNAL, "out of memory");
    } catch (const std::exception& e) {
      j->status = obd::Status(obd::Code::kINTERNAL, e.what());
    }
    j->run = nullptr;  // drop what it holds here, before close() can go on
  }

  static void complete(napi_env env, napi_status status, void* data) {
    std::unique_ptr<Job> j(static_cast<Job*>(data));
    if (status == napi_ok) j->settle();
    LifetimePtr life = std::move(j->life);
    j.reset();
    if (life) life->end();
  }

  // Resolves or rejects; any failure (a dying environment) is swallowed.
  void settle() {
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return;
    try {
      Napi::Env e(env);
      if (!status.is_ok()) {
        napi_reject_deferred(env, deferred, make_error(e, status).Value());
      } else {
        Napi::Value v = done ? done(e) : e.Undefined();
        if (e.IsExceptionPending()) {
          napi_reject_deferred(env, deferred, e.GetAndClearPendingException().Value());
        } else {
          napi_resolve_deferred(env, deferred, v);
        }
      }
    } catch (const Napi::Error& err) {
      if (!err.IsEmpty()) napi_reject_deferred(env, deferred, err.Value());
    } catch (...) {
    }
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
      napi_value ignored;
      napi_get_and_clear_last_exception(env, &ignored);
    }
    napi_close_handle_scope(env, scope);
  }

  // Creates the promise and the work; the caller queues it.
  static Job* make(Napi::Env env, const char* name, Work run, Done done, napi_value* promise) {
    auto j = std::make_unique<Job>();
    j->env = env;
    j->run = std::move(run);
    j->done = std::move(done);
    napi_value resource_name;
    if (napi_create_promise(env, &j->deferred, promise) != napi_ok ||
        napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
        napi_create_async_work(env, nullptr, resource_name, execute, complete, j.get(), &j->work) != napi_ok) {
      throw Napi::Error::New(env);
    }
    return j.release();
  }

  static void queue(Job* j) {
    if (j->life) j->life->begin();
    if (napi_queue_async_work(j->env, j->work) != napi_ok) {
      // Never runs: settle it as failed now (a no-op in a dying environment).
      j->status = obd::Status(obd::Code::kINTERNAL, "cannot queue native work");
      complete(j->env, napi_ok, j);
    }
  }
};

Lifetime::~Lifetime() { delete pending_close_; }

bool Lifetime::check_open(Napi::Env env, const char* what) const {
  if (!closed_) return true;
  throw_status(env, obd::Status(obd::Code::kCLOSED, std::string(what) + " is closed"));
  return false;
}

Napi::Promise Lifetime::close(Napi::Env env, const char* name, Work finish) {
  if (closed_) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Resolve(env.Undefined());
    return d.Promise();
  }
  closed_ = true;
  napi_value promise;
  Job* j = Job::make(env, name, std::move(finish), nullptr, &promise);
  if (in_flight_ == 0) {
    Job::queue(j);
  } else {
    pending_close_ = j;
  }
  return Napi::Promise(env, promise);
}

void Lifetime::end() {
  if (--in_flight_ > 0 || !pending_close_) return;
  Job* j = pending_close_;
  pending_close_ = nullptr;
  Job::queue(j);
}

Closable::Closable(Napi::Env env) : live_(env_data(env)->live) { live_->insert(this); }

Closable::~Closable() { live_->erase(this); }

Registrar::Registrar(const char* name, InitFn fn) { registry().push_back({name, fn}); }

Napi::Error make_error(Napi::Env env, const obd::Status& s) {
  EnvData* d = env_data(env);
  const char* code = obd::code_name(s.code());
  if (d && !d->error_ctor.IsEmpty()) {
    Napi::Value e = d->error_ctor.New({Napi::String::New(env, code), Napi::String::New(env, s.message())});
    return Napi::Error(env, e);
  }
  Napi::Error e = Napi::Error::New(env, s.message());
  e.Set("code", Napi::String::New(env, code));
  return e;
}

void set_ctor(Napi::Env env, const std::string& name, Napi::Function ctor) {
  env_data(env)->ctors[name] = Napi::Persistent(ctor);
}

Napi::Function get_ctor(Napi::Env env, const std::string& name) { return env_data(env)->ctors.at(name).Value(); }

void throw_status(Napi::Env env, const obd::Status& s) { make_error(env, s).ThrowAsJavaScriptException(); }

Napi::Promise run_async(Napi::Env env, const char* name, Work work, Done done, LifetimePtr life) {
  napi_value promise;
  Job* j = Job::make(env, name, std::move(work), std::move(done), &promise);
  j->life = std::move(life);
  Job::queue(j);
  return Napi::Promise(env, promise);
}

// Settles a thread job on the JS thread; env is null when the environment is
// going away, and then the job is only freed (its async work with it is dead).
static void settle_thread_job(napi_env env, napi_value, void*, void* data) {
  if (!env) {
    static_cast<Job*>(data)->work = nullptr;
    delete static_cast<Job*>(data);
    return;
  }
  Job::complete(env, napi_ok, data);
}

Napi::Promise run_on_thread(Napi::Env env, const char* name, Work work, Done done) {
  napi_value promise;
  Job* j = Job::make(env, name, std::move(work), std::move(done), &promise);
  napi_value resource;
  napi_threadsafe_function tsfn = nullptr;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource) != napi_ok ||
      napi_create_threadsafe_function(env, nullptr, nullptr, resource, 0, 1, nullptr, nullptr, nullptr, settle_thread_job,
                                      &tsfn) != napi_ok) {
    j->status = obd::Status(obd::Code::kINTERNAL, "cannot start a native thread job");
    Job::complete(env, napi_ok, j);
    return Napi::Promise(env, promise);
  }
  std::thread([j, tsfn] {
    Job::execute(nullptr, j);
    napi_call_threadsafe_function(tsfn, j, napi_tsfn_blocking);
    napi_release_threadsafe_function(tsfn, napi_tsfn_release);
  }).detach();
  return Napi::Promise(env, promise);
}

Napi::Promise run_async(Napi::Env env, const char* name, Work work, LifetimePtr life) {
  return run_async(env, name, std::move(work), nullptr, std::move(life));
}

Napi::Value promise_read(const Napi::CallbackInfo& info, std::shared_ptr<obd::File> file, const char* name,
                         LifetimePtr life) {
  Napi::Env env = info.Env();
  uint64_t off = arg_u64(info, 0, "offset");
  uint64_t len = arg_u64(info, 1, "length");
  if (env.IsExceptionPending()) return env.Undefined();
  if (len > (1u << 30)) {
    throw_status(env, obd::Status(obd::Code::kEINVAL, "read length " + std::to_string(len) + " is above 1 GiB"));
    return env.Undefined();
  }
  auto out = std::make_shared<std::vector<uint8_t>>();
  return run_async(
      env, name,
      [file, off, len, out]() -> obd::Status {
        out->resize(len);
        OBD_ASSIGN_OR_RETURN(size_t got, file->pread(out->data(), len, off));
        out->resize(got);
        return obd::Status::ok();
      },
      [out](Napi::Env env) -> Napi::Value {
        // Hand the vector to the Buffer without copying; freed with it.
        auto* owned = new std::vector<uint8_t>(std::move(*out));
        return Napi::Buffer<uint8_t>::New(env, owned->data(), owned->size(),
                                          [](Napi::Env, uint8_t*, std::vector<uint8_t>* v) { delete v; }, owned);
      },
      std::move(life));
}

static void type_error(const Napi::CallbackInfo& info, size_t i, const char* what, const char* expected) {
  throw_status(info.Env(), obd::Status(obd::Code::kEINVAL, std::string("argument ") + std::to_string(i) + " (" +
                                                               what + ") must be " + expected));
}

bool arg_bytes(const Napi::CallbackInfo& info, size_t i, const char* what, std::vector<uint8_t>* out) {
  Napi::Value v = info[i];
  if (v.IsTypedArray()) {
    auto t = v.As<Napi::TypedArray>();
    const uint8_t* p = static_cast<const uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset();
    out->assign(p, p + t.ByteLength());
    return true;
  }
  if (v.IsDataView()) {
    auto d = v.As<Napi::DataView>();
    const uint8_t* p = static_cast<const uint8_t*>(d.ArrayBuffer().Data()) + d.ByteOffset();
    out->assign(p, p + d.ByteLength());
    return true;
  }
  type_error(info, i, what, "a Buffer, typed array or DataView");
  return false;
}


std::string arg_string(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsString()) {
    type_error(info, i, what, "a string");
    return {};
  }
  std::string s = info[i].As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) {
    type_error(info, i, what, "a string without NUL bytes");
    return {};
  }
  return s;
}

std::string opt_path(const Napi::Object& o, const char* key, const char* what) {
  std::string s = opt_string(o, key);
  if (s.find('\0') != std::string::npos) {
    throw_status(o.Env(), obd::Status(obd::Code::kEINVAL, std::string(what ? what : key) + " must be a path without NUL bytes"));
    return {};
  }
  return s;
}

uint64_t arg_u64(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info[i].IsBigInt()) {
    bool lossless = true;
    uint64_t v = info[i].As<Napi::BigInt>().Uint64Value(&lossless);
    if (lossless) return v;
  } else if (info[i].IsNumber()) {
    double d = info[i].As<Napi::Number>().DoubleValue();
    if (d >= 0 && d <= 9007199254740991.0 && d == double(uint64_t(d))) return uint64_t(d);
  }
  type_error(info, i, what, "a non-negative integer");
  return 0;
}

Napi::Object arg_object(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsObject()) {
    type_error(info, i, what, "an object");
    return Napi::Object::New(info.Env());
  }
  return info[i].As<Napi::Object>();
}

std::string opt_string(const Napi::Object& o, const char* key, const std::string& dflt) {
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : dflt;
}

uint64_t opt_u64(const Napi::Object& o, const char* key, uint64_t dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsNumber()) return uint64_t(v.As<Napi::Number>().Int64Value());
  if (v.IsBigInt()) {
    bool lossless;
    return v.As<Napi::BigInt>().Uint64Value(&lossless);
  }
  return dflt;
}

bool opt_bool(const Napi::Object& o, const char* key, bool dflt) {
  Napi::Value v = o.Get(key);
  return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : dflt;
}

}  // namespace obdjs

// The core's codes and their categories, for the check in test/errors.test.ts.
static Napi::Value error_codes(Napi::Env env) {
  Napi::Object out = Napi::Object::New(env);
#define OBD_EXPORT_CODE(name, str, cat) \
  out.Set(str, Napi::String::New(env, obd::category_name(obd::Category::cat)));
  OBD_ERROR_CODES(OBD_EXPORT_CODE)
#undef OBD_EXPORT_CODE
  return out;
}

// CLOCK_REALTIME in microseconds: Date.now() has only milliseconds, and
// performance.timeOrigin + now() drifts from the wall clock by milliseconds,
// while containerd's clients compare snapshot times with their own clock.
static Napi::Value realtime_micros(const Napi::CallbackInfo& info) {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return Napi::Number::New(info.Env(), double(ts.tv_sec) * 1e6 + double(ts.tv_nsec / 1000));
}

static Napi::Object init_addon(Napi::Env env, Napi::Object exports) {
  auto* data = new obdjs::EnvData();
  env.SetInstanceData(data);
  napi_add_env_cleanup_hook(env, obdjs::release_live, data);
  exports.Set("setErrorClass", Napi::Function::New(env, obdjs::set_error_class));
  exports.Set("errorCodes", error_codes(env));
  exports.Set("realtimeMicros", Napi::Function::New(env, realtime_micros, "realtimeMicros"));
  for (auto& r : obdjs::registry()) r.fn(env, exports);
  return exports;
}

NODE_API_MODULE(overlaybd, init_addon)
