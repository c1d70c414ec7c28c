#include "common.h"

#include <map>
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

// Per-environment state: the OverlaybdError constructor set by lib/native.ts.
struct EnvData {
  Napi::FunctionReference error_ctor;
  std::map<std::string, Napi::FunctionReference> ctors;
};

EnvData* env_data(Napi::Env env) { return env.GetInstanceData<EnvData>(); }

class PromiseWorker final : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, const char* name, Work work, Done done)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)), done_(std::move(done)) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      status_ = work_();
    } catch (const std::bad_alloc&) {
      status_ = obd::Status(obd::Code::kINTERNAL, "out of memory");
    } catch (const std::exception& e) {
      status_ = obd::Status(obd::Code::kINTERNAL, e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    if (!status_.is_ok()) {
      deferred_.Reject(make_error(env, status_).Value());
      return;
    }
    if (!done_) {
      deferred_.Resolve(env.Undefined());
      return;
    }
    Napi::Value v = done_(env);
    if (env.IsExceptionPending()) {
      deferred_.Reject(env.GetAndClearPendingException().Value());
    } else {
      deferred_.Resolve(v);
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Work work_;
  Done done_;
  obd::Status status_;
};

Napi::Value set_error_class(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) {
    Napi::TypeError::New(info.Env(), "setErrorClass expects a constructor").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  env_data(info.Env())->error_ctor = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

}  // namespace

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

Napi::Promise run_async(Napi::Env env, const char* name, Work work, Done done) {
  auto* w = new PromiseWorker(env, name, std::move(work), std::move(done));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Promise run_async(Napi::Env env, const char* name, Work work) {
  return run_async(env, name, std::move(work), nullptr);
}

Napi::Value promise_read(const Napi::CallbackInfo& info, std::shared_ptr<obd::File> file, const char* name) {
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
      });
}

static void type_error(const Napi::CallbackInfo& info, size_t i, const char* what, const char* expected) {
  throw_status(info.Env(), obd::Status(obd::Code::kEINVAL, std::string("argument ") + std::to_string(i) + " (" +
                                                               what + ") must be " + expected));
}

std::string arg_string(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsString()) {
    type_error(info, i, what, "a string");
    return {};
  }
  return info[i].As<Napi::String>().Utf8Value();
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

static Napi::Object init_addon(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new obdjs::EnvData());
  exports.Set("setErrorClass", Napi::Function::New(env, obdjs::set_error_class));
  exports.Set("errorCodes", error_codes(env));
  for (auto& r : obdjs::registry()) r.fn(env, exports);
  return exports;
}

NODE_API_MODULE(overlaybd, init_addon)
