// §5.2 file mode: cred.json, re-read when it changes.
#include <sys/stat.h>

#include <cerrno>
#include <fstream>
#include <mutex>
#include <sstream>

#include "remote/credential_match.h"
#include "remote/credentials.h"

namespace obd::remote {

namespace {

class FileCredentials final : public CredentialProvider {
 public:
  explicit FileCredentials(std::string path) : path_(std::move(path)) {}

  Result<std::optional<Credential>> lookup(const std::string& blob_url) override {
    std::lock_guard lock(mu_);
    OBD_TRY(refresh());
    if (!loaded_) return std::optional<Credential>();
    return match_auths(*loaded_, blob_url, path_);
  }

 private:
  struct Stamp {
    dev_t dev;
    ino_t ino;
    off_t size;
    timespec mtime;
    bool operator==(const Stamp& o) const {
      return dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
             mtime.tv_nsec == o.mtime.tv_nsec;
    }
  };

  // Keeps the parsed "auths" of the file as it is now; a missing file has none.
  Status refresh() {
    struct stat st;
    if (::stat(path_.c_str(), &st) != 0) {
      if (errno != ENOENT) return Status::from_errno(errno, "credential file " + path_);
      loaded_.reset();
      stamp_.reset();
      return Status::ok();
    }
    Stamp now{st.st_dev, st.st_ino, st.st_size, st.st_mtim};
    if (stamp_ && *stamp_ == now) return Status::ok();
    std::ifstream in(path_, std::ios::binary);
    if (!in) return Status(Code::kEIO, "credential file " + path_ + ": cannot open");
    std::ostringstream text;
    text << in.rdbuf();
    auto doc = parse_json(text.str(), "credential file " + path_);
    if (!doc) return Status(Code::kEIO, doc.status().message());
    const JsonValue* auths = doc->get("auths");
    if (!auths || !auths->is_object()) return Status(Code::kEIO, "credential file " + path_ + ": no \"auths\" object");
    loaded_ = *auths;
    stamp_ = now;
    return Status::ok();
  }

  const std::string path_;
  std::mutex mu_;
  std::optional<Stamp> stamp_;
  std::optional<JsonValue> loaded_;
};

}  // namespace

CredentialProviderPtr file_credentials(std::string path) { return std::make_shared<FileCredentials>(std::move(path)); }

}  // namespace obd::remote
