#include "remote/http_headers.h"

#include <cctype>
#include <charconv>

namespace obd::remote {

namespace {

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); i++) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != std::tolower(static_cast<unsigned char>(prefix[i]))) return false;
  }
  return true;
}

void skip_space(std::string_view& s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
}

std::optional<uint64_t> number(std::string_view s) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

}  // namespace

std::optional<Challenge> parse_challenge(std::string_view h) {
  skip_space(h);
  Challenge c{};
  if (iequals_prefix(h, "basic") && (h.size() == 5 || h[5] == ' ')) {
    c.scheme = Challenge::Scheme::kBasic;
    return c;
  }
  if (!iequals_prefix(h, "bearer ")) return std::nullopt;
  c.scheme = Challenge::Scheme::kBearer;
  h.remove_prefix(7);
  // auth-params: name=value or name="quoted, with \" escapes", comma separated.
  while (!h.empty()) {
    skip_space(h);
    size_t eq = h.find('=');
    if (eq == std::string_view::npos) break;
    std::string name(h.substr(0, eq));
    for (char& ch : name) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    while (!name.empty() && name.back() == ' ') name.pop_back();
    h.remove_prefix(eq + 1);
    skip_space(h);
    std::string value;
    if (!h.empty() && h.front() == '"') {
      h.remove_prefix(1);
      while (!h.empty() && h.front() != '"') {
        if (h.front() == '\\' && h.size() > 1) h.remove_prefix(1);
        value += h.front();
        h.remove_prefix(1);
      }
      if (!h.empty()) h.remove_prefix(1);
    } else {
      size_t end = h.find(',');
      value = std::string(h.substr(0, end));
      while (!value.empty() && value.back() == ' ') value.pop_back();
      h.remove_prefix(end == std::string_view::npos ? h.size() : end);
    }
    if (name == "realm") c.realm = value;
    else if (name == "service") c.service = value;
    else if (name == "scope") c.scope = value;
    skip_space(h);
    if (!h.empty() && h.front() == ',') h.remove_prefix(1);
  }
  if (c.realm.empty()) return std::nullopt;
  return c;
}

std::optional<ContentRange> parse_content_range(std::string_view h) {
  skip_space(h);
  if (!iequals_prefix(h, "bytes ")) return std::nullopt;
  h.remove_prefix(6);
  skip_space(h);
  size_t slash = h.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  ContentRange r;
  std::string_view range = h.substr(0, slash), total = h.substr(slash + 1);
  while (!total.empty() && (total.back() == ' ' || total.back() == '\r')) total.remove_suffix(1);
  if (total != "*") {
    r.total = number(total);
    if (!r.total) return std::nullopt;
  }
  if (range == "*") {
    if (!r.total) return std::nullopt;
    r.unsatisfied = true;
    return r;
  }
  size_t dash = range.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  auto first = number(range.substr(0, dash)), last = number(range.substr(dash + 1));
  if (!first || !last || *last < *first) return std::nullopt;
  if (r.total && *last >= *r.total) return std::nullopt;
  r.first = *first;
  r.last = *last;
  return r;
}

std::optional<uint64_t> parse_retry_after(std::string_view h) {
  skip_space(h);
  while (!h.empty() && (h.back() == ' ' || h.back() == '\r')) h.remove_suffix(1);
  return number(h);
}

}  // namespace obd::remote
