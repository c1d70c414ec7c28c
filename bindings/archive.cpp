// Layer blob decompression for the convertor: gzip or zstd (by magic) to a
// plain tar file, natively (Node 20 has no zstd).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <vector>

#include "archive/byte_stream.h"
#include "common.h"

namespace obdjs {
namespace {

obd::Status decompress_file(const std::string& src, const std::string& dst, obd::Compression* detected,
                            uint64_t* written) {
  OBD_ASSIGN_OR_RETURN(obd::ByteStreamPtr raw, obd::open_path_stream(src));
  OBD_ASSIGN_OR_RETURN(obd::ByteStreamPtr in, obd::make_decompressing_stream(std::move(raw), detected));
  int fd = ::open(dst.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return obd::Status::from_errno(errno, "create " + dst);
  std::vector<uint8_t> buf(1 << 20);
  obd::Status s;
  *written = 0;
  while (s.is_ok()) {
    auto n = in->read(buf.data(), buf.size());
    if (!n) {
      s = n.status();
      break;
    }
    if (*n == 0) break;
    for (size_t w = 0; w < *n;) {
      ssize_t r = ::write(fd, buf.data() + w, *n - w);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        s = obd::Status::from_errno(errno, "write " + dst);
        break;
      }
      w += size_t(r);
    }
    *written += *n;
  }
  if (::close(fd) != 0 && s.is_ok()) s = obd::Status::from_errno(errno, "close " + dst);
  if (!s.is_ok()) ::unlink(dst.c_str());
  return s;
}

// decompressFile(src, dst) -> Promise<{ compression, bytes }>
Napi::Value decompress_file_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string src = arg_string(info, 0, "src"), dst = arg_string(info, 1, "dst");
  if (env.IsExceptionPending()) return env.Undefined();
  auto detected = std::make_shared<obd::Compression>(obd::Compression::kNone);
  auto written = std::make_shared<uint64_t>(0);
  return run_async(
      env, "obd.decompressFile", [=] { return decompress_file(src, dst, detected.get(), written.get()); },
      [detected, written](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("compression", obd::compression_name(*detected));
        o.Set("bytes", double(*written));
        return o;
      });
}

// makePipe() -> { readFd, writeFd }: a pipe (close-on-exec) that carries a
// layer blob from JS (the write end, wrapped in a net.Socket, non-blocking)
// to a native reader. 1 MiB of pipe buffer where the system allows it.
Napi::Value make_pipe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    throw_status(env, obd::Status::from_errno(errno, "pipe2"));
    return env.Undefined();
  }
  (void)::fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
  Napi::Object o = Napi::Object::New(env);
  o.Set("readFd", double(fds[0]));
  o.Set("writeFd", double(fds[1]));
  return o;
}

void init_archive(Napi::Env env, Napi::Object exports) {
  exports.Set("decompressFile", Napi::Function::New(env, decompress_file_js));
  exports.Set("makePipe", Napi::Function::New(env, make_pipe));
}

Registrar reg("archive", init_archive);

}  // namespace
}  // namespace obdjs
