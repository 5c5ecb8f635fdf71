// auth_session.cc — Dovecot auth connections: line framing (16 KiB limit),
// the key check against the Store, and one log line per AUTH attempt that
// names the account and key id, never the key (a throttled client's attempts:
// one line when its throttling starts, the rest at debug level).
#include "auth_session.h"

#include <unistd.h>

#include "mailgate/crypto.h"
#include "mailgate/log.h"
#include "mailgate/rules_auth.h"

namespace mailgate::policy {
namespace {

std::atomic<unsigned> g_connection_counter{0};

}  // namespace

AuthResult StoreAuthenticator::authenticate(std::string_view username, std::string_view password,
                                            std::string_view client_ip) {
  Result<KeyLookup> lookup = password.empty() ? Result<KeyLookup>(KeyLookup{}) : store_.lookupKey(redis_, password, client_ip);
  AuthResult r = decideAuth(lookup, username, config_.auth_internal_error);
  std::string ip = printable(client_ip.empty() ? "unknown" : client_ip);
  // A prefix of the key's hash lets an admin match attempts without the key.
  std::string hash = sha256Hex(password).substr(0, 8);
  switch (r.kind) {
    case AuthResult::Kind::Ok:
      MG_LOG_INFO("auth: ok: client=[%s] user=%s", ip.c_str(), printable(r.user).c_str());
      break;
    case AuthResult::Kind::Fail:
      MG_LOG_INFO("auth: fail: client=[%s] username=\"%s\" key_sha256=%s... reason=\"%s\"%s", ip.c_str(),
                  printable(username).c_str(), hash.c_str(), r.reason.c_str(),
                  lookup ? "" : (" error=\"" + lookup.error().message + "\"").c_str());
      if (lookup && lookup->throttling_starts) {
        MG_LOG_WARN("auth: throttled: client=[%s] after %u failed attempts (auth_fail_limit); its attempts are "
                    "refused until %llds pass without one (auth_fail_window)", ip.c_str(), config_.auth_fail_limit,
                    static_cast<long long>(config_.auth_fail_window.count()));
      }
      break;
    case AuthResult::Kind::Disconnect:
      if (lookup && lookup->kind == KeyLookup::Kind::Throttled) {
        MG_LOG_DEBUG("auth: disconnect: client=[%s] key_sha256=%s... reason=\"%s\"", ip.c_str(), hash.c_str(),
                     r.reason.c_str());
        break;
      }
      MG_LOG_WARN("auth: disconnect: client=[%s] key_sha256=%s... reason=\"%s\"", ip.c_str(), hash.c_str(),
                  lookup ? r.reason.c_str() : lookup.error().message.c_str());
      break;
  }
  return r;
}

AuthConnection::AuthConnection(std::shared_ptr<const Config> config, Store& store, RedisConn& redis)
    : snapshot_(std::move(config)),
      authenticator_(*snapshot_, store, redis),
      session_(authenticator_, static_cast<unsigned>(getpid()), ++g_connection_counter, toHex(randomBytes(16))) {}

Session::Next AuthConnection::onInput(std::string_view data, bool eof, std::string& out) {
  buf_.append(data);
  size_t start = 0;
  while (true) {
    size_t nl = buf_.find('\n', start);
    if (nl == std::string::npos) break;
    if (nl - start > kMaxAuthLineBytes) {
      MG_LOG_WARN("auth: line longer than %zu bytes; closing connection", kMaxAuthLineBytes);
      return Next::CloseNow;
    }
    if (session_.onLine(std::string_view(buf_).substr(start, nl - start), out) == AuthSession::Next::Close) {
      return Next::CloseNow;
    }
    ++completed_;
    start = nl + 1;
  }
  buf_.erase(0, start);
  if (buf_.size() > kMaxAuthLineBytes) {
    MG_LOG_WARN("auth: line longer than %zu bytes; closing connection", kMaxAuthLineBytes);
    return Next::CloseNow;
  }
  return eof ? Next::CloseAfterWrite : Next::Continue;
}

}  // namespace mailgate::policy
