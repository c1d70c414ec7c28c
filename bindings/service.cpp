// The image service object: created from the settings lib/service derives
// from overlaybd.json, it opens images whose remote lowers read through the
// native registry client and cache. Events reach JS through a thread-safe
// function that I/O threads never wait on (a full queue drops events).
#include <mutex>

#include "common.h"
#include "image_spec.h"
#include "service/image_service.h"

namespace obdjs {
namespace {

using obd::Result;
using obd::Status;
namespace svc = obd::service;

// The `download` object of the settings or of one image request (its
// fields over the ones given).
void download_from(const Napi::Object& o, bool* enable, obd::download::DownloadOptions* d) {
  if (!o.Get("download").IsObject()) return;
  Napi::Object j = o.Get("download").As<Napi::Object>();
  *enable = opt_bool(j, "enable", *enable);
  d->delay_s = uint32_t(opt_u64(j, "delayS", d->delay_s));
  d->delay_extra_s = uint32_t(opt_u64(j, "delayExtraS", d->delay_extra_s));
  d->max_mbps = uint32_t(opt_u64(j, "maxMBps", d->max_mbps));
  d->try_cnt = uint32_t(opt_u64(j, "tryCnt", d->try_cnt));
  d->block_size = uint32_t(opt_u64(j, "blockSize", d->block_size));
}

svc::Settings settings_from(const Napi::Object& o) {
  svc::Settings s;
  s.use_cache = opt_string(o, "cacheType", "file") != "download";
  s.cache.dir = opt_path(o, "cacheDir");
  s.cache.capacity = opt_u64(o, "cacheSizeBytes", s.cache.capacity);
  s.cache.refill_size = uint32_t(opt_u64(o, "refillSize", s.cache.refill_size));
  if (o.Has("evictIntervalMs")) s.cache.evict_interval_ms = uint32_t(opt_u64(o, "evictIntervalMs"));
  if (o.Has("minFreeBytes")) s.cache.min_free_bytes = opt_u64(o, "minFreeBytes");
  std::string engine = opt_string(o, "ioEngine");
  if (engine == "io_uring") s.engine = obd::IoEngine::kIoUring;
  if (engine == "psync") s.engine = obd::IoEngine::kPsync;
  s.credential_file = opt_path(o, "credentialFile");
  if (o.Get("credentialServer").IsObject()) {
    Napi::Object c = o.Get("credentialServer").As<Napi::Object>();
    s.credential_server = obd::remote::CredentialServer{opt_string(c, "mode"), opt_string(c, "path"),
                                                        uint32_t(opt_u64(c, "timeoutMs", 1000)), opt_path(c, "clientCert"),
                                                        opt_path(c, "clientKey"), opt_path(c, "serverCa")};
  }
  if (o.Get("auths").IsArray()) {
    Napi::Array a = o.Get("auths").As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      if (!a.Get(i).IsObject()) continue;
      Napi::Object e = a.Get(i).As<Napi::Object>();
      s.auths.emplace_back(opt_string(e, "prefix"),
                           obd::remote::Credential{opt_string(e, "username"), opt_string(e, "password")});
    }
  }
  if (o.Get("tls").IsObject()) {
    Napi::Object t = o.Get("tls").As<Napi::Object>();
    s.registry.ca_file = opt_path(t, "caFile");
    s.registry.cert_file = opt_path(t, "certFile");
    s.registry.key_file = opt_path(t, "keyFile");
  }
  s.registry.p2p_address = opt_string(o, "p2pAddress");
  s.registry.user_agent = opt_string(o, "userAgent", s.registry.user_agent);
  s.registry.read_timeout_ms = uint32_t(opt_u64(o, "readTimeoutMs", s.registry.read_timeout_ms));
  s.registry.retries = uint32_t(opt_u64(o, "retries", s.registry.retries));
  download_from(o, &s.download_enable, &s.download);
  s.prefetch_concurrency = unsigned(opt_u64(o, "prefetchConcurrency", 16));
  if (o.Get("audit").IsObject()) {
    Napi::Object a = o.Get("audit").As<Napi::Object>();
    s.audit_enable = opt_bool(a, "enable");
    s.audit_path = opt_path(a, "path");
  }
  return s;
}

// { lowers: [{ file?, url?, digest?, size?, dir? }], upper?, download?, tracePath?, autoPrefetch? }
svc::ImageRequest request_from(const Napi::Object& o, const svc::Settings& s) {
  svc::ImageRequest r;
  if (o.Get("lowers").IsArray()) {
    Napi::Array a = o.Get("lowers").As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      if (!a.Get(i).IsObject()) continue;
      Napi::Object l = a.Get(i).As<Napi::Object>();
      std::string what = "lowers[" + std::to_string(i) + "]";
      r.lowers.push_back(obd::layer::LayerRef{opt_path(l, "file", (what + ".file").c_str()), opt_string(l, "url"),
                                              opt_string(l, "digest"), opt_u64(l, "size"),
                                              opt_path(l, "dir", (what + ".dir").c_str())});
    }
  }
  if (o.Get("upper").IsObject()) {
    Napi::Object u = o.Get("upper").As<Napi::Object>();
    r.upper = obd::UpperSpec{opt_path(u, "data", "upper.data"), opt_path(u, "index", "upper.index")};
  }
  r.download_enable = s.download_enable;
  r.download = s.download;
  download_from(o, &r.download_enable, &r.download);
  r.trace_path = opt_path(o, "tracePath");
  r.auto_prefetch = opt_bool(o, "autoPrefetch", true);
  return r;
}

void deliver_event(Napi::Env env, Napi::Function fn, svc::Event* ev) {
  std::unique_ptr<svc::Event> e(ev);
  if (!env || !fn) return;
  try {
    Napi::Object o = Napi::Object::New(env);
    auto n = [&](const char* k, uint64_t v) { o.Set(k, Napi::Number::New(env, double(v))); };
    o.Set("kind", e->kind);
    if (!e->digest.empty()) o.Set("digest", e->digest);
    n("offset", e->offset);
    n("length", e->length);
    n("bytes", e->bytes);
    n("latencyUs", e->latency_us);
    if (e->kind == "download") n("layer", e->layer);
    if (!e->state.empty()) o.Set("state", e->state);
    if (!e->message.empty()) o.Set("message", e->message);
    o.Set("ok", e->ok);
    fn.Call({o});
  } catch (...) {
  }
  if (env.IsExceptionPending()) env.GetAndClearPendingException();
}

// The JS listener. I/O threads post under a lock that release() takes too,
// so no post can race the function's release.
class EventChannel {
 public:
  explicit EventChannel(Napi::ThreadSafeFunction fn) : fn_(fn) {}
  void post(svc::Event&& e) {
    std::lock_guard lk(mu_);
    if (!open_) return;
    auto* msg = new svc::Event(std::move(e));
    if (fn_.NonBlockingCall(msg, deliver_event) != napi_ok) delete msg;  // queue full: dropped
  }
  void release() {
    std::lock_guard lk(mu_);
    if (!open_) return;
    open_ = false;
    fn_.Release();
  }

 private:
  std::mutex mu_;
  bool open_ = true;
  Napi::ThreadSafeFunction fn_;
};

class ServiceWrap final : public Napi::ObjectWrap<ServiceWrap>, public Closable {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "NativeImageService",
                       {InstanceMethod<&ServiceWrap::open>("openImage", kMethod),
                        InstanceMethod<&ServiceWrap::stats>("stats", kMethod),
                        InstanceMethod<&ServiceWrap::add_credentials>("addCredentials", kMethod),
                        InstanceMethod<&ServiceWrap::set_listener>("setListener", kMethod),
                        InstanceMethod<&ServiceWrap::close>("close", kMethod),
                        InstanceAccessor<&ServiceWrap::p2p>("p2pActive")});
  }

  explicit ServiceWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ServiceWrap>(info), Closable(info.Env()) {
    if (info.Length() == 1 && info[0].IsExternal())
      service_ = *info[0].As<Napi::External<std::shared_ptr<svc::ImageService>>>().Data();
    else
      life_->mark_closed();
  }
  ~ServiceWrap() override { drop_listener(); }

  void release() override {
    life_->mark_closed();
    drop_listener();
    service_.reset();
  }

 private:
  void drop_listener() {
    if (service_) service_->observer().set_sink(nullptr);
    if (channel_) channel_->release();
    channel_.reset();
  }

  // openImage(request) -> Promise<NativeImage>
  Napi::Value open(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!life_->check_open(env, "image service")) return env.Undefined();
    Napi::Object o = arg_object(info, 0, "request");
    if (env.IsExceptionPending()) return env.Undefined();
    svc::ImageRequest req = request_from(o, service_->settings());
    if (env.IsExceptionPending()) return env.Undefined();
    auto service = service_;
    auto result = std::make_shared<obd::ImagePtr>();
    return run_async(
        env, "obd.service.openImage",
        [service, req, result]() -> Status {
          OBD_ASSIGN_OR_RETURN(auto img, service->open(req));
          *result = std::move(img);
          return Status::ok();
        },
        [result](Napi::Env env) -> Napi::Value {
          auto ext = Napi::External<obd::ImagePtr>::New(env, result.get());
          return get_ctor(env, "NativeImage").New({ext});
        },
        life_);
  }

  // stats(resetMax) -> { pread, download }: cumulative counts and bytes, max latency since the last reset.
  Napi::Value stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!life_->check_open(env, "image service")) return env.Undefined();
    bool reset = info.Length() > 0 && info[0].ToBoolean();
    auto& st = service_->observer().stats();
    auto type = [&](svc::TypeStats& t) {
      svc::TypeSnapshot s = t.take(reset);
      Napi::Object o = Napi::Object::New(env);
      o.Set("count", double(s.count));
      o.Set("bytes", double(s.bytes));
      o.Set("maxLatencyUs", double(s.max_latency_us));
      return o;
    };
    Napi::Object o = Napi::Object::New(env);
    o.Set("pread", type(st.pread));
    o.Set("download", type(st.download));
    return o;
  }

  Napi::Value add_credentials(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!life_->check_open(env, "image service")) return env.Undefined();
    std::string prefix = arg_string(info, 0, "prefix");
    std::string user = arg_string(info, 1, "username");
    std::string pass = arg_string(info, 2, "password");
    if (env.IsExceptionPending()) return env.Undefined();
    service_->add_credentials(prefix, obd::remote::Credential{user, pass});
    return env.Undefined();
  }

  // setListener(fn | null): events go to fn; the function does not keep the process alive.
  Napi::Value set_listener(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!life_->check_open(env, "image service")) return env.Undefined();
    drop_listener();
    if (info.Length() > 0 && info[0].IsFunction()) {
      auto fn = Napi::ThreadSafeFunction::New(env, info[0].As<Napi::Function>(), "obd.service.events", 1024, 1);
      fn.Unref(env);
      channel_ = std::make_shared<EventChannel>(fn);
      auto channel = channel_;
      service_->observer().set_sink([channel](svc::Event&& e) { channel->post(std::move(e)); });
    }
    return env.Undefined();
  }

  Napi::Value p2p(const Napi::CallbackInfo& info) {
    if (!life_->check_open(info.Env(), "image service")) return info.Env().Undefined();
    return Napi::Boolean::New(info.Env(), service_->p2p_active());
  }

  // close(): no new images; open ones keep the registry and cache alive.
  Napi::Value close(const Napi::CallbackInfo& info) {
    drop_listener();
    auto service = std::move(service_);
    return life_->close(info.Env(), "obd.service.close", [service]() mutable -> Status {
      service.reset();
      return Status::ok();
    });
  }

  std::shared_ptr<svc::ImageService> service_;
  std::shared_ptr<EventChannel> channel_;
};

// createImageService(settings) -> Promise<NativeImageService>
Napi::Value create_service(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, 0, "settings");
  if (env.IsExceptionPending()) return env.Undefined();
  svc::Settings s = settings_from(o);
  if (env.IsExceptionPending()) return env.Undefined();
  auto result = std::make_shared<std::shared_ptr<svc::ImageService>>();
  return run_async(
      env, "obd.createImageService",
      [s, result]() -> Status {
        OBD_ASSIGN_OR_RETURN(*result, svc::ImageService::create(s));
        return Status::ok();
      },
      [result](Napi::Env env) -> Napi::Value {
        auto ext = Napi::External<std::shared_ptr<svc::ImageService>>::New(env, result.get());
        return get_ctor(env, "NativeImageService").New({ext});
      });
}

void init_service(Napi::Env env, Napi::Object exports) {
  set_ctor(env, "NativeImageService", ServiceWrap::define(env));
  exports.Set("createImageService", Napi::Function::New(env, create_service, "createImageService"));
  exports.Set("NativeImageService", get_ctor(env, "NativeImageService"));
}

Registrar reg("service", init_service);

}  // namespace
}  // namespace obdjs
