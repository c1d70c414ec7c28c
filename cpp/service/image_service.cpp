#include "service/image_service.h"

#include <map>

#include "download/switchable_file.h"
#include "layer/blob.h"

namespace obd::service {

// Credentials added after start, matched like the others; read per lookup
// (lookups happen once per token, not per read).
class ImageService::Credentials final : public remote::CredentialProvider {
 public:
  void add(std::string prefix, remote::Credential cred) {
    std::lock_guard lk(mu_);
    auths_.emplace_back(std::move(prefix), std::move(cred));
  }
  Result<std::optional<remote::Credential>> lookup(const std::string& url) override {
    std::vector<std::pair<std::string, remote::Credential>> copy;
    {
      std::lock_guard lk(mu_);
      copy = auths_;
    }
    if (copy.empty()) return std::optional<remote::Credential>();
    return remote::static_credentials(std::move(copy))->lookup(url);
  }

 private:
  std::mutex mu_;
  std::vector<std::pair<std::string, remote::Credential>> auths_;
};

// Opens the lowers of one image: local files as they are; a remote blob
// through the registry, the cache (unless P2P serves it, §6.1) and a
// switchable file the background download can point at the local copy.
class ImageService::Opener final : public layer::BlobOpener {
 public:
  struct Remote {
    FilePtr origin;  // the registry blob, uncached (the download reads it)
    std::shared_ptr<download::SwitchableFile> blob;
  };
  Opener(ImageService& svc) : svc_(svc) {}

  Result<FilePtr> open_read(const layer::LayerRef& ref) override {
    if (!ref.file.empty()) return open_local(ref.file, OpenMode::kRead, svc_.settings_.engine);
    if (ref.url.empty() || ref.digest.empty())
      return Status(Code::kENOENT, "layer " + ref.label() + ": no local file and no registry blob (repoBlobUrl, digest)");
    OBD_ASSIGN_OR_RETURN(FilePtr origin, svc_.registry_->open_blob(ref.url, ref.digest, ref.size));
    FilePtr served = origin;
    if (svc_.cache_ && !svc_.registry_->p2p_active()) {
      OBD_ASSIGN_OR_RETURN(served, svc_.cache_->open(ref.digest, origin));
    }
    auto blob = std::make_shared<download::SwitchableFile>(served, ref.digest);
    std::lock_guard lk(mu_);
    remotes_[ref.digest] = Remote{origin, blob};
    return FilePtr(blob);
  }

  std::optional<Remote> remote(const std::string& digest) {
    std::lock_guard lk(mu_);
    auto it = remotes_.find(digest);
    if (it == remotes_.end()) return std::nullopt;
    return it->second;
  }

 private:
  ImageService& svc_;
  std::mutex mu_;
  std::map<std::string, Remote> remotes_;
};

Result<std::shared_ptr<ImageService>> ImageService::create(Settings settings) {
  std::shared_ptr<ImageService> svc(new ImageService());
  svc->observer_ = std::make_shared<Observer>(settings.audit_enable ? settings.audit_path : "");
  svc->added_ = std::make_shared<Credentials>();
  for (auto& [prefix, cred] : settings.auths) svc->added_->add(prefix, cred);
  // Explicit entries first (docker config, helpers), then the configured provider.
  std::vector<remote::CredentialProviderPtr> chain{svc->added_};
  if (settings.credential_server) chain.push_back(remote::server_credentials(*settings.credential_server));
  if (!settings.credential_file.empty()) chain.push_back(remote::file_credentials(settings.credential_file));
  OBD_ASSIGN_OR_RETURN(svc->registry_, remote::Registry::create(settings.registry, remote::chain_credentials(chain),
                                                                svc->observer_));
  if (settings.use_cache) {
    auto cache = cache::CacheStore::open(settings.cache, svc->observer_);
    if (!cache) return cache.status().with_context("cacheConfig.cacheDir " + settings.cache.dir);
    svc->cache_ = std::move(cache).value();
  }
  svc->settings_ = std::move(settings);
  return svc;
}

void ImageService::add_credentials(std::string prefix, remote::Credential cred) {
  added_->add(std::move(prefix), std::move(cred));
}

Result<std::shared_ptr<ServiceImage>> ImageService::open(const ImageRequest& req) {
  ServiceImage::Parts parts;
  parts.observer = observer_;
  parts.prefetch_concurrency = settings_.prefetch_concurrency;
  if (!req.trace_path.empty()) {
    OBD_ASSIGN_OR_RETURN(parts.plan, trace::load(req.trace_path));
    if (parts.plan.mode == trace::Mode::kRecord) {
      OBD_ASSIGN_OR_RETURN(parts.recorder, trace::Recorder::start(req.trace_path));
    }
  }

  auto opener = std::make_shared<Opener>(*this);
  ImageSpec spec;
  spec.lowers = req.lowers;
  spec.upper = req.upper;
  spec.engine = settings_.engine;
  spec.opener = opener;
  std::mutex contents_mu;
  parts.layer_contents.resize(req.lowers.size());
  auto recorder = parts.recorder;
  spec.wrap_lower = [&](size_t i, FilePtr content) {
    if (recorder) content = recorder->wrap(uint32_t(i), std::move(content));
    std::lock_guard lk(contents_mu);
    parts.layer_contents[i] = content;
    return content;
  };
  auto stack = open_image(spec);
  if (!stack) {
    if (parts.recorder) (void)parts.recorder->finish();
    return stack.status();
  }
  parts.stack = std::move(stack).value();

  if (req.download_enable) {
    std::vector<download::DownloadJob> jobs;
    for (size_t i = 0; i < req.lowers.size(); i++) {
      const auto& l = req.lowers[i];
      if (!l.file.empty() || l.dir.empty()) continue;
      auto r = opener->remote(l.digest);
      if (!r) continue;
      uint64_t size = l.size;
      if (!size) {
        auto s = r->origin->size();
        if (s) size = *s;
      }
      jobs.push_back(download::DownloadJob{uint32_t(i), l.digest, size, l.dir, r->origin, r->blob});
    }
    if (!jobs.empty()) {
      auto opts = req.download;
      opts.engine = settings_.engine;
      parts.downloader = download::Downloader::start(opts, std::move(jobs), observer_);
      // No download while a trace is recorded (§6.3); ServiceImage resumes it when recording ends.
      if (parts.recorder) parts.downloader->pause(true);
    }
  }
  bool prefetch = req.auto_prefetch && (parts.plan.mode == trace::Mode::kReplay || parts.plan.mode == trace::Mode::kFileList);
  auto img = std::make_shared<ServiceImage>(std::move(parts));
  if (prefetch) img->start_prefetch();
  return img;
}

}  // namespace obd::service
