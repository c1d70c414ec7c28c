// Pure parsing of the remote module: credential matching (§5.2: the first
// auths key in file order equal to a candidate prefix wins), credential
// files re-read on change, challenges, Content-Range, JSON and base64.
#include <gtest/gtest.h>

#include <fstream>

#include "remote/base64.h"
#include "remote/credential_match.h"
#include "remote/credentials.h"
#include "remote/http_headers.h"
#include "remote/json.h"
#include "remote/url.h"
#include "test_util.h"

namespace obd::remote {
namespace {

const std::string kUrl = "https://reg.example:5000/v2/ns/sub/app/blobs/sha256:abc";

TEST(RemoteCredentials, CandidatesRunFromHostToRepository) {
  EXPECT_EQ(credential_candidates(kUrl),
            (std::vector<std::string>{"reg.example:5000", "reg.example:5000/ns", "reg.example:5000/ns/sub",
                                      "reg.example:5000/ns/sub/app"}));
  EXPECT_EQ(credential_candidates("http://h/other/path"), std::vector<std::string>{"h"});
}

TEST(RemoteCredentials, FirstKeyInFileOrderWins) {
  // Both keys match; document order decides, not specificity.
  auto r = match_auths_document(
      R"({"auths": {"other": {"auth": "eDp5"}, "reg.example:5000/ns/sub/app": {"username": "deep", "password": "1"},
                    "reg.example:5000": {"username": "host", "password": "2"}}})",
      kUrl, "cred.json");
  ASSERT_TRUE(r) << r.status().to_string();
  ASSERT_TRUE(r.value());
  EXPECT_EQ(r.value()->username, "deep");
  r = match_auths_document(R"({"auths": {"reg.example:5000/ns": {"auth": ")" + base64_encode("u:p:w") + R"("},
                                         "reg.example:5000/ns/sub/app": {"username": "deep"}}})",
                           kUrl, "cred.json");
  ASSERT_TRUE(r && r.value());
  EXPECT_EQ(r.value()->username, "u");
  EXPECT_EQ(r.value()->password, "p:w");  // split at the first colon
}

TEST(RemoteCredentials, PrefixesMatchWholeComponentsOnly) {
  auto r = match_auths_document(R"({"auths": {"reg.example:5000/n": {"auth": "eDp5"}, "reg.example": {"auth": "eDp5"},
                                              "https://reg.example:5000": {"auth": "eDp5"}}})",
                                kUrl, "cred.json");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r.value());
}

TEST(RemoteCredentials, BadEntriesAreProviderErrors) {
  for (const char* doc : {R"({"auths": {"reg.example:5000": {"auth": "not base64!"}}})",
                          R"({"auths": {"reg.example:5000": {"auth": ")" "eHk=" R"("}}})",  // "xy": no colon
                          R"({"auths": {"reg.example:5000": {}}})", R"({"auths": []})", R"({"nothing": 1})",
                          R"({"auths": )"}) {
    auto r = match_auths_document(doc, kUrl, "cred.json");
    ASSERT_FALSE(r) << doc;
    EXPECT_EQ(r.status().code(), Code::kEIO) << doc;
    EXPECT_NE(r.status().message().find("cred.json"), std::string::npos) << r.status().message();
  }
}

TEST(RemoteCredentials, FileIsReadAgainWhenItChanges) {
  test::TempDir dir;
  std::string path = dir.file("cred.json");
  auto provider = file_credentials(path);
  auto r = provider->lookup(kUrl);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r.value());  // no file: no credentials
  auto write = [&](const std::string& user) {
    std::ofstream(path) << R"({"auths": {"reg.example:5000": {"username": ")" << user << R"(", "password": "pw"}}})";
  };
  write("first");
  r = provider->lookup(kUrl);
  ASSERT_TRUE(r && r.value());
  EXPECT_EQ(r.value()->username, "first");
  write("second-user");  // a different size, so a change even within one mtime tick
  r = provider->lookup(kUrl);
  ASSERT_TRUE(r && r.value());
  EXPECT_EQ(r.value()->username, "second-user");
  std::ofstream(path) << "{broken";
  r = provider->lookup(kUrl);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().code(), Code::kEIO);
}

TEST(RemoteCredentials, StaticAndChainsAnswerInOrder) {
  auto a = static_credentials({{"reg.example:5000/ns", {"a", "1"}}, {"reg.example:5000", {"b", "2"}}});
  auto r = a->lookup(kUrl);
  ASSERT_TRUE(r && r.value());
  EXPECT_EQ(r.value()->username, "a");
  auto none = static_credentials({{"elsewhere", {"x", "y"}}});
  auto failing = server_credentials({"uds", "/nonexistent/obd-cred.sock", 200, "", "", ""});
  r = chain_credentials({none, failing, a})->lookup(kUrl);
  ASSERT_TRUE(r && r.value());  // a later answer beats an earlier failure
  EXPECT_EQ(r.value()->username, "a");
  r = chain_credentials({none, failing})->lookup(kUrl);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().code(), Code::kEIO);
  r = chain_credentials({none})->lookup(kUrl);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r.value());
}

TEST(RemoteHeaders, Challenges) {
  auto c = parse_challenge(R"(Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push")");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->scheme, Challenge::Scheme::kBearer);
  EXPECT_EQ(c->realm, "https://auth.example/token");
  EXPECT_EQ(c->service, "registry.example");
  EXPECT_EQ(c->scope, "repository:a/b:pull,push");  // a comma inside quotes stays
  c = parse_challenge(R"(bearer realm=https://x/t, scope="s \"q\"")");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->realm, "https://x/t");
  EXPECT_EQ(c->scope, "s \"q\"");
  c = parse_challenge(R"(Basic realm="registry")");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->scheme, Challenge::Scheme::kBasic);
  EXPECT_FALSE(parse_challenge("Bearer service=x"));  // no realm
  EXPECT_FALSE(parse_challenge("Negotiate abc"));
}

TEST(RemoteHeaders, ContentRangeAndRetryAfter) {
  auto r = parse_content_range("bytes 4096-8191/1048576");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first, 4096u);
  EXPECT_EQ(r->last, 8191u);
  EXPECT_EQ(r->total, 1048576u);
  r = parse_content_range("bytes */0");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->unsatisfied);
  EXPECT_EQ(r->total, 0u);
  r = parse_content_range("bytes 0-0/*");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->total);
  for (const char* bad : {"bytes 5-4/10", "bytes 0-10/10", "items 0-1/2", "bytes 0-1", "bytes x-1/2", "bytes */*"}) {
    EXPECT_FALSE(parse_content_range(bad)) << bad;
  }
  EXPECT_EQ(parse_retry_after(" 3 "), 3u);
  EXPECT_FALSE(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"));
}

TEST(RemoteJson, ParsesStringsNumbersAndOrder) {
  auto v = parse_json(R"( {"b": [1, -2.5e1, true, false, null], "a": "x\"\\\/\n\u00e9\ud83d\ude00", "b": 2} )", "doc");
  ASSERT_TRUE(v) << v.status().to_string();
  ASSERT_EQ(v->members.size(), 3u);
  EXPECT_EQ(v->members[0].first, "b");  // document order, duplicates kept
  EXPECT_EQ(v->get("b")->items.size(), 5u);
  EXPECT_EQ(v->get("b")->items[1].number, -25);
  EXPECT_EQ(v->get("a")->string, "x\"\\/\n\xc3\xa9\xf0\x9f\x98\x80");
  for (const char* bad : {"", "{", "{\"a\" 1}", "[1,]", "{\"a\":1} x", "\"\\ud800\"", "\"a\nb\"", "01x", "nul"}) {
    auto r = parse_json(bad, "doc");
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.status().code(), Code::kEINVAL);
    }
  }
  EXPECT_FALSE(parse_json(std::string(100, '[') + std::string(100, ']'), "deep"));
}

TEST(RemoteBase64, RoundTrips) {
  for (std::string s : {"", "a", "ab", "abc", "abcd", "user:pässword"}) {
    auto d = base64_decode(base64_encode(s));
    ASSERT_TRUE(d);
    EXPECT_EQ(*d, s);
  }
  EXPECT_EQ(base64_encode("alice:secret"), "YWxpY2U6c2VjcmV0");
  EXPECT_EQ(base64_decode("YWxpY2U6c2VjcmV0"), "alice:secret");
  EXPECT_FALSE(base64_decode("a"));
  EXPECT_FALSE(base64_decode("ab*d"));
}

TEST(RemoteUrl, ResolvesLocations) {
  EXPECT_EQ(resolve_url("http://h:1/v2/a/blobs/d", "/data/x?sig=1"), "http://h:1/data/x?sig=1");
  EXPECT_EQ(resolve_url("http://h:1/v2/a/blobs/d", "https://s3.example/b?x=y"), "https://s3.example/b?x=y");
  EXPECT_EQ(url_encode("a b/c:d"), "a%20b%2Fc%3Ad");
}

}  // namespace
}  // namespace obd::remote
