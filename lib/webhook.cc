// webhook.cc — webhook payloads and signatures (nlohmann::json, OpenSSL
// HMAC), the retry schedule, the addresses webhooks may reach (IANA
// special-purpose ranges refused), and the libcurl multi client that posts
// them, checking every address it connects to.
#include "mailgate/webhook.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <mutex>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "mailgate/crypto.h"
#include "mailgate/limits.h"
#include "mailgate/log.h"

namespace mailgate {

nlohmann::json webhookEventJson(const Event& e) {
  return {{"id", e.id},
          {"event", e.status},
          {"time", utcTimestamp(e.time_ms)},
          {"timestamp", e.time_ms},
          {"queue_id", e.queue_id},
          {"message_id", e.message_id},
          {"account", e.account},
          {"key_id", e.key_id},
          {"campaign_id", e.campaign},
          {"letter_id", e.letter_id},
          {"from", e.from},
          {"recipient", e.rcpt},
          {"code", e.code},
          {"text", e.text}};
}

std::string webhookBody(const std::vector<Event>& events) {
  nlohmann::json list = nlohmann::json::array();
  for (const Event& e : events) list.push_back(webhookEventJson(e));
  return jsonText({{"events", list}});
}

std::string webhookSignature(const std::string& secret, int64_t unix_time, const std::string& body) {
  std::string t = std::to_string(unix_time);
  return "t=" + t + ",v1=" + hmacSha256Hex(secret, t + "." + body);
}

std::chrono::milliseconds retryDelay(unsigned attempt, std::chrono::milliseconds initial,
                                     std::chrono::milliseconds max, double jitter01) {
  double delay = static_cast<double>(initial.count());
  for (unsigned i = 1; i < attempt && delay < static_cast<double>(max.count()); ++i) delay *= 2;
  delay = std::min(delay, static_cast<double>(max.count()));
  return std::chrono::milliseconds(static_cast<int64_t>(delay * (0.8 + 0.4 * jitter01)));
}

int64_t streamIdMillis(const std::string& id) { return std::strtoll(id.c_str(), nullptr, 10); }

StreamId StreamId::parse(std::string_view text) {
  StreamId id;
  size_t dash = text.find('-');
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), text.data() + std::min(dash, text.size()), id.ms);
  if (ec != std::errc() || dash == std::string_view::npos || p != text.data() + dash) return {};
  auto [q, ec2] = std::from_chars(p + 1, end, id.seq);
  if (ec2 != std::errc() || q != end) return {};
  return id;
}

std::string StreamId::toString() const { return std::to_string(ms) + "-" + std::to_string(seq); }

StreamId StreamId::previous() const {
  if (seq > 0) return {ms, seq - 1};
  if (ms > 0) return {ms - 1, UINT64_MAX};
  return {};
}

bool validWebhookUrl(const std::string& url) {
  for (const char* scheme : {"https://", "http://"}) {
    if (url.starts_with(scheme)) {
      std::string rest = url.substr(std::string_view(scheme).size());
      return !rest.empty() && rest.front() != '/' && url.find_first_of(" \t\r\n") == std::string::npos;
    }
  }
  return false;
}

namespace {

struct Range {
  Cidr net;
  const char* name;
};

// IANA's special-purpose registries (RFC 6890 and later): everything not
// globally reachable. First match wins. The ranges embedding an IPv4
// address are checked by that address (see nonPublicRange).
const std::vector<Range>& nonPublicRanges() {
  static const std::vector<Range> kRanges = [] {
    const std::pair<const char*, const char*> table[] = {
        {"0.0.0.0/8", "unspecified"},       {"10.0.0.0/8", "private"},
        {"100.64.0.0/10", "shared"},        {"127.0.0.0/8", "loopback"},
        {"169.254.0.0/16", "link-local"},   {"172.16.0.0/12", "private"},
        {"192.0.0.0/24", "reserved"},       {"192.0.2.0/24", "documentation"},
        {"192.88.99.0/24", "reserved"},     {"192.168.0.0/16", "private"},
        {"198.18.0.0/15", "reserved"},      {"198.51.100.0/24", "documentation"},
        {"203.0.113.0/24", "documentation"}, {"224.0.0.0/4", "multicast"},
        {"240.0.0.0/4", "reserved"},        {"::/128", "unspecified"},
        {"::1/128", "loopback"},            {"::/96", "reserved"},
        {"64:ff9b:1::/48", "private"},      {"100::/64", "reserved"},
        {"2001::/32", "reserved"},          {"2001:2::/48", "reserved"},
        {"2001:10::/28", "reserved"},       {"2001:20::/28", "reserved"},
        {"2001:db8::/32", "documentation"}, {"3fff::/20", "documentation"},
        {"fc00::/7", "unique-local"},       {"fe80::/10", "link-local"},
        {"fec0::/10", "site-local"},        {"ff00::/8", "multicast"},
    };
    std::vector<Range> out;
    for (const auto& [net, name] : table) out.push_back({*parseCidr(net), name});
    return out;
  }();
  return kRanges;
}

std::string ipv4Text(const uint8_t* b) {
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, b, buf, sizeof buf);
  return buf;
}

// The host of an http(s) URL: after the scheme and any user info, before
// the port, path, query or fragment; IPv6 literals without brackets and
// zone id. Empty when there is none.
std::string urlHost(std::string_view url) {
  size_t start = url.find("://");
  if (start == std::string_view::npos) return "";
  std::string_view rest = url.substr(start + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (size_t at = rest.rfind('@'); at != std::string_view::npos) rest.remove_prefix(at + 1);
  if (rest.starts_with("[")) {
    rest = rest.substr(1, rest.find(']') - 1);
    return std::string(rest.substr(0, rest.find('%')));
  }
  return std::string(rest.substr(0, rest.find(':')));
}

size_t discardBody(char*, size_t size, size_t n, void*) { return size * n; }

void curlGlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

std::string nonPublicRange(std::string_view address) {
  auto a = parseCidr(address);
  if (!a || address.find('/') != std::string_view::npos) return "invalid";
  if (a->v6) {
    const uint8_t* b = a->addr.data();
    // IPv4-mapped (::ffff:0:0/96), NAT64 (64:ff9b::/96), 6to4 (2002::/16):
    // what they reach is the IPv4 address inside.
    static const Cidr kMapped = *parseCidr("::ffff:0:0/96"), kNat64 = *parseCidr("64:ff9b::/96"),
                      k6to4 = *parseCidr("2002::/16");
    std::string text(address);
    if (kMapped.contains(text) || kNat64.contains(text)) return nonPublicRange(ipv4Text(b + 12));
    if (k6to4.contains(text)) return nonPublicRange(ipv4Text(b + 2));
  }
  for (const Range& r : nonPublicRanges()) {
    if (r.net.v6 == a->v6 && r.net.contains(address)) return r.name;
  }
  return "";
}

bool webhookAddressAllowed(std::string_view address, const std::vector<Cidr>& allow) {
  std::string range = nonPublicRange(address);
  if (range.empty()) return true;
  if (range == "invalid") return false;
  return std::any_of(allow.begin(), allow.end(), [&](const Cidr& net) { return net.contains(address); });
}

bool webhookPeerAllowed(const sockaddr* address, const std::vector<Cidr>& allow) {
  char text[INET6_ADDRSTRLEN] = "";
  if (address->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, text, sizeof text);
  } else if (address->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr, text, sizeof text);
  } else {
    return false;
  }
  return webhookAddressAllowed(text, allow);
}

std::string refusedUrlHost(const std::string& url, const std::vector<Cidr>& allow) {
  std::string host = urlHost(url);
  for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  while (host.ends_with(".")) host.pop_back();
  if (host == "localhost" || host.ends_with(".localhost")) host = "127.0.0.1";  // RFC 6761
  // The IPv4 forms inet_aton reads (127.1, 0x7f.1, 2130706433), as libcurl
  // and the resolver do.
  in_addr v4{};
  if (host.find_first_not_of("0123456789abcdefx.") == std::string::npos && inet_aton(host.c_str(), &v4) == 1) {
    host = ipv4Text(reinterpret_cast<const uint8_t*>(&v4));
  }
  if (!parseCidr(host) || host.find('/') != std::string::npos) return "";  // a host name
  return webhookAddressAllowed(host, allow) ? "" : nonPublicRange(host);
}

std::string loggableUrl(const std::string& url) {
  size_t scheme = url.find("://");
  if (scheme == std::string::npos) return printable(url.substr(0, 8)) + "...";
  size_t authority_end = url.find_first_of("/?#", scheme + 3);
  std::string authority = url.substr(scheme + 3, authority_end - (scheme + 3));
  if (size_t at = authority.rfind('@'); at != std::string::npos) authority.erase(0, at + 1);
  std::string out = url.substr(0, scheme + 3) + authority;
  bool cut = false;
  if (authority_end != std::string::npos && url[authority_end] == '/') {
    size_t segment_end = url.find_first_of("/?#", authority_end + 1);
    std::string segment = url.substr(authority_end, segment_end - authority_end);
    if (segment.size() > 12) {
      segment.resize(12);
      cut = true;
    }
    out += segment;
    cut = cut || segment_end != std::string::npos;
  } else {
    cut = authority_end != std::string::npos;
  }
  return printable(out) + (cut ? "..." : "");
}

struct WebhookClient::Transfer {
  std::string tag, body, signature;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  char error[CURL_ERROR_SIZE] = "";
  const std::vector<Cidr>* allow = nullptr;
  bool refused = false;  // an address of the host was not allowed
  ~Transfer() {
    curl_easy_cleanup(easy);
    curl_slist_free_all(headers);
  }
};

namespace {

// CURLOPT_OPENSOCKETFUNCTION: called for every address libcurl is about to
// connect to; a refused one gets no socket, so no packet is sent to it.
curl_socket_t openSocket(void* clientp, curlsocktype purpose, curl_sockaddr* address) noexcept {
  auto* t = static_cast<WebhookClient::Transfer*>(clientp);
  if (purpose != CURLSOCKTYPE_IPCXN || !webhookPeerAllowed(&address->addr, *t->allow)) {
    t->refused = true;
    return CURL_SOCKET_BAD;
  }
  return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

}  // namespace

WebhookClient::WebhookClient(std::chrono::milliseconds timeout, std::vector<Cidr> allow)
    : timeout_(timeout), allow_(std::move(allow)) {
  curlGlobalInit();
  multi_ = curl_multi_init();
}

WebhookClient::~WebhookClient() {
  for (auto& t : transfers_) curl_multi_remove_handle(static_cast<CURLM*>(multi_), t->easy);
  transfers_.clear();
  curl_multi_cleanup(static_cast<CURLM*>(multi_));
}

void WebhookClient::setAllowNetworks(std::vector<Cidr> allow) {
  allow_ = std::move(allow);
  stale_connections_ = true;
}

void WebhookClient::start(const std::string& tag, const std::string& url, const std::string& secret,
                          const std::vector<Event>& events) {
  // Connections are checked when opened: those opened under another allow
  // list go with the old multi handle, or are not reused while it is busy.
  bool fresh_connect = stale_connections_;
  if (stale_connections_ && transfers_.empty()) {
    curl_multi_cleanup(static_cast<CURLM*>(multi_));
    multi_ = curl_multi_init();
    stale_connections_ = fresh_connect = false;
  }
  auto t = std::make_unique<Transfer>();
  t->tag = tag;
  t->allow = &allow_;
  t->body = webhookBody(events);
  t->signature = "X-Mailgate-Signature: " + webhookSignature(secret, nowMillis() / 1000, t->body);
  t->headers = curl_slist_append(t->headers, "Content-Type: application/json");
  t->headers = curl_slist_append(t->headers, t->signature.c_str());
  t->headers = curl_slist_append(t->headers, "Expect:");
  t->easy = curl_easy_init();
  CURL* c = t->easy;
  if (c == nullptr || multi_ == nullptr) {
    std::snprintf(t->error, sizeof t->error, "cannot initialise libcurl");
  } else {
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_PROXY, "");  // no proxy from the environment: it would connect for us, unchecked
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, openSocket);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, t.get());
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, t->body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t->body.size()));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "mailgate-tracker/1");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_.count()));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_.count()));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    if (fresh_connect) curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discardBody);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, t->error);
    curl_easy_setopt(c, CURLOPT_PRIVATE, t.get());
    if (curl_multi_add_handle(static_cast<CURLM*>(multi_), c) != CURLM_OK) {
      std::snprintf(t->error, sizeof t->error, "cannot start the transfer");
      curl_easy_cleanup(c);
      t->easy = nullptr;
    }
  }
  transfers_.push_back(std::move(t));
}

std::vector<std::pair<std::string, HttpResult>> WebhookClient::run(std::chrono::milliseconds wait) {
  std::vector<std::pair<std::string, HttpResult>> done;
  // Transfers that could not even start end at once.
  for (auto it = transfers_.begin(); it != transfers_.end();) {
    if ((*it)->easy != nullptr) {
      ++it;
      continue;
    }
    done.push_back({(*it)->tag, HttpResult{0, (*it)->error}});
    it = transfers_.erase(it);
  }
  CURLM* m = static_cast<CURLM*>(multi_);
  if (transfers_.empty() || m == nullptr) return done;
  int running = 0;
  curl_multi_perform(m, &running);
  if (running > 0 && wait.count() > 0) {
    curl_multi_poll(m, nullptr, 0, static_cast<int>(wait.count()), nullptr);
    curl_multi_perform(m, &running);
  }
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(m, &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    Transfer* t = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&t));
    HttpResult r;
    if (msg->data.result != CURLE_OK && t->refused) {
      r.error = kWebhookAddressRefused;  // whatever the other addresses did
    } else if (msg->data.result != CURLE_OK) {
      r.error = t->error[0] != '\0' ? t->error : curl_easy_strerror(msg->data.result);
    } else {
      curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &r.status);
      if (r.status < 200 || r.status > 299) r.error = "HTTP " + std::to_string(r.status);
    }
    curl_multi_remove_handle(m, msg->easy_handle);
    done.push_back({t->tag, std::move(r)});
    std::erase_if(transfers_, [&](const std::unique_ptr<Transfer>& p) { return p.get() == t; });
  }
  return done;
}

HttpResult WebhookClient::post(const std::string& url, const std::string& secret, const std::vector<Event>& events) {
  start("post", url, secret, events);
  while (true) {
    for (auto& [tag, result] : run(std::chrono::milliseconds(200))) {
      if (tag == "post") return result;
    }
  }
}

}  // namespace mailgate
