// auth_proto.h — the server side of the Dovecot authentication protocol
// (PROTOCOLS.md §3) as Postfix and Exim speak it: handshake, AUTH with PLAIN
// and LOGIN (with and without initial response), CONT rounds, OK/FAIL
// answers. Pure: credentials are checked by an Authenticator, no sockets.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace mailgate {

constexpr size_t kMaxAuthLineBytes = 16384;

struct AuthResult {
  enum class Kind { Ok, Fail, Disconnect };
  Kind kind = Kind::Fail;
  std::string user;    // Ok: "ACCOUNT/KEYID"
  std::string reason;  // Fail: shown by Postfix as "535 5.7.8 Error: authentication failed: <reason>"
  bool temporary = false;  // Fail: adds code=temp_fail
};

class Authenticator {
 public:
  virtual ~Authenticator() = default;
  // `username` as the client gave it (may be empty), `password` the API key,
  // `client_ip` the rip= value (may be empty).
  virtual AuthResult authenticate(std::string_view username, std::string_view password,
                                  std::string_view client_ip) = 0;
};

struct PlainCredentials {
  std::string authzid, authcid, password;
};
// Splits a decoded SASL PLAIN message "authzid\0authcid\0password".
std::optional<PlainCredentials> decodePlain(std::string_view message);

// Dovecot field escaping: \001 + '1' 't' 'r' 'n' '0' for 0x01 TAB CR LF NUL.
std::string unescapeAuthField(std::string_view field);
std::string escapeAuthField(std::string_view field);

// Requests waiting for a CONT. The MTA never says when its client gave up
// (`*`, bad base64, disconnect), so abandoned requests are dropped: the
// oldest when the table is full, any after kAuthPendingTtl (two rounds of
// Postfix's 300s smtpd_timeout).
constexpr size_t kMaxPendingAuthRequests = 64;
constexpr std::chrono::seconds kAuthPendingTtl{600};

class AuthSession {
 public:
  AuthSession(Authenticator& authenticator, unsigned pid, unsigned connection_id, std::string cookie_hex,
              std::chrono::steady_clock::duration pending_ttl = kAuthPendingTtl);

  // Everything the server sends right after accept, up to DONE.
  std::string handshake() const;

  enum class Next { Continue, Close };
  // One line without its LF. Appends answers to `out`. Close means: drop
  // the connection now (protocol violation or a Disconnect result).
  Next onLine(std::string_view line, std::string& out);

 private:
  struct Pending {
    std::string mech;  // "PLAIN" or "LOGIN"
    std::string login_user;
    bool login_have_user = false;
    std::string client_ip;
    std::chrono::steady_clock::time_point since;  // when the AUTH arrived
  };
  // Drops expired requests, and the oldest one when the table is full.
  void dropAbandoned();
  Next onAuth(std::string_view line, std::string& out);
  Next onCont(std::string_view line, std::string& out);
  // Feeds one client response to a pending request.
  Next step(uint32_t id, Pending& p, const std::string& response, std::string& out);
  Next finish(uint32_t id, std::string_view user, std::string_view password, const std::string& client_ip,
              std::string& out);

  Authenticator& auth_;
  unsigned pid_, connection_id_;
  std::string cookie_;
  bool got_version_ = false;
  unsigned client_minor_ = 0;
  std::chrono::steady_clock::duration pending_ttl_;
  std::map<uint32_t, Pending> pending_;
};

}  // namespace mailgate
