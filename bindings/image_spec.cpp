#include "image_spec.h"

#include "common.h"

namespace obdjs {

obd::ImageSpec image_spec_from(const Napi::Object& o) {
  obd::ImageSpec spec;
  Napi::Value lowers = o.Get("lowers");
  if (lowers.IsArray()) {
    Napi::Array a = lowers.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      std::string p = a.Get(i).ToString().Utf8Value();
      if (p.find('\0') != std::string::npos) {
        throw_status(o.Env(), obd::Status(obd::Code::kEINVAL, "lowers[" + std::to_string(i) + "] must be a path without NUL bytes"));
        return spec;
      }
      spec.lowers.push_back({p});
    }
  }
  Napi::Value upper = o.Get("upper");
  if (upper.IsObject()) {
    Napi::Object u = upper.As<Napi::Object>();
    spec.upper = obd::UpperSpec{opt_path(u, "data", "upper.data"), opt_path(u, "index", "upper.index")};
  }
  std::string engine = opt_string(o, "ioEngine");
  if (engine == "io_uring") spec.engine = obd::IoEngine::kIoUring;
  if (engine == "psync") spec.engine = obd::IoEngine::kPsync;
  return spec;
}

}  // namespace obdjs
