// The image service (upstream's ImageService under overlaybd-tcmu, §6): one
// per process, shared by every image it opens. It owns the registry client
// (connections, tokens), the blob cache, the credentials, the audit log and
// the counters; `open` builds an image whose remote lowers read through
// them. Thread-safe.
#pragma once
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "service/observer.h"
#include "service/service_image.h"
#include "service/settings.h"

namespace obd::service {

// One image to open: config.v1.json resolved by lib/service (local files
// found, acceleration layer taken off, download settings merged).
struct ImageRequest {
  std::vector<layer::LayerRef> lowers;  // bottom first; remote ones have url + digest
  std::optional<UpperSpec> upper;
  bool download_enable = false;
  download::DownloadOptions download;
  std::string trace_path;               // recordTracePath or the acceleration layer's trace
  bool auto_prefetch = true;            // start the prefetch as soon as the image is open
};

class ImageService {
 public:
  static Result<std::shared_ptr<ImageService>> create(Settings settings);

  Result<std::shared_ptr<ServiceImage>> open(const ImageRequest& req);

  // Credentials found later (a credential helper run for a new registry).
  void add_credentials(std::string prefix, remote::Credential cred);
  Observer& observer() { return *observer_; }
  const Settings& settings() const { return settings_; }
  bool p2p_active() const { return registry_->p2p_active(); }

 private:
  class Credentials;
  class Opener;
  ImageService() = default;

  Settings settings_;
  std::shared_ptr<Observer> observer_;
  std::shared_ptr<Credentials> added_;
  std::shared_ptr<remote::Registry> registry_;
  std::shared_ptr<cache::CacheStore> cache_;  // null: cacheType download (no file cache)
};

}  // namespace obd::service
