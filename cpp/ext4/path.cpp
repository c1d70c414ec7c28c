#include "ext4/path.h"

#include <deque>

#include "ext4/inode.h"

namespace obd::ext4 {

namespace {
constexpr int kMaxLinks = 255;  // containerd's limit
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) out.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

Child Resolved::leaf() const {
  if (found.empty()) return Child{EXT2_ROOT_INO, EXT2_FT_DIR};
  return found.back();
}

std::string Resolved::key() const {
  std::string k;
  for (const auto& c : comps) {
    if (!k.empty()) k += '/';
    k += c;
  }
  return k;
}

Result<Resolved> resolve_path(const Fs& fs, Tree& tree, const std::string& path, bool follow_last) {
  Resolved r;
  std::deque<std::string> todo;
  for (auto& c : split_path(path)) todo.push_back(std::move(c));
  int links = 0;
  while (!todo.empty()) {
    std::string c = std::move(todo.front());
    todo.pop_front();
    if (c == ".") continue;
    if (c == "..") {
      // Lexical, and clamped at the root.
      if (!r.comps.empty()) {
        r.comps.pop_back();
        if (r.found.size() > r.comps.size()) r.found.pop_back();
      }
      continue;
    }
    if (r.blocked || r.found.size() < r.comps.size()) {
      r.comps.push_back(std::move(c));  // below a missing component
      continue;
    }
    Child parent = r.leaf();
    if (!parent.is_dir()) {
      r.blocked = true;
      r.comps.push_back(std::move(c));
      continue;
    }
    OBD_ASSIGN_OR_RETURN(const Child* ch, tree.lookup(parent.ino, c));
    if (!ch) {
      r.comps.push_back(std::move(c));
      continue;
    }
    if (ch->ftype == EXT2_FT_SYMLINK && (!todo.empty() || follow_last)) {
      if (++links > kMaxLinks)
        return Status(Code::kTAR_UNSAFE_PATH, "too many levels of symbolic links resolving \"" + path + "\"");
      OBD_ASSIGN_OR_RETURN(std::string target, read_symlink(fs, ch->ino));
      if (!target.empty() && target[0] == '/') {
        r.comps.clear();
        r.found.clear();
      }
      auto parts = split_path(target);
      todo.insert(todo.begin(), parts.begin(), parts.end());
      continue;
    }
    r.comps.push_back(std::move(c));
    r.found.push_back(*ch);
  }
  return r;
}

}  // namespace obd::ext4
