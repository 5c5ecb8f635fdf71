// http_server.cc — the libmicrohttpd callbacks of mailgate-web: body
// collection (up to kMaxWebBody), the route, token verification and the
// unsubscribe record; one syslog line per decision, never the token.
#include "http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <string>

#include "mailgate/events.h"
#include "mailgate/log.h"
#include "mailgate/unsubscribe_record.h"
#include "mailgate/unsubscribe_token.h"
#include "mailgate/web_request.h"

namespace mailgate::web {

namespace {

// Per request: the body read so far.
struct RequestState {
  std::string body;
  bool too_large = false;
};

MHD_Result send(MHD_Connection* connection, unsigned status, const std::string& text,
                const char* type = "text/plain; charset=utf-8") {
  MHD_Response* response =
      MHD_create_response_from_buffer(text.size(), const_cast<char*>(text.data()), MHD_RESPMEM_MUST_COPY);
  if (response == nullptr) return MHD_NO;
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  MHD_add_response_header(response, "X-Content-Type-Options", "nosniff");
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
    MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD, POST");
  }
  MHD_Result r = MHD_queue_response(connection, status, response);
  MHD_destroy_response(response);
  return r;
}

// The client's address for the log ("?" when unknown).
std::string clientAddress(MHD_Connection* connection) {
  const MHD_ConnectionInfo* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (info == nullptr || info->client_addr == nullptr) return "?";
  char host[64] = "?";
  const sockaddr* sa = info->client_addr;
  if (sa->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, host, sizeof host);
  } else if (sa->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, host, sizeof host);
  } else if (sa->sa_family == AF_UNIX) {
    return "unix";
  }
  return host;
}

// libmicrohttpd's own errors (socket, memory), to syslog like the rest.
void logLibraryError(void*, const char* format, va_list args) {
  char text[512];
  vsnprintf(text, sizeof text, format, args);
  std::string line = text;
  while (!line.empty() && line.back() == '\n') line.pop_back();
  MG_LOG_WARN("web: libmicrohttpd: %s", line.c_str());
}

}  // namespace

bool HttpServer::start(UniqueFd fd, unsigned threads, unsigned max_connections) {
  const unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
  daemon_ = MHD_start_daemon(flags, 0, nullptr, nullptr, &HttpServer::onRequest, this,
                             MHD_OPTION_EXTERNAL_LOGGER, &logLibraryError, nullptr,  // first, as MHD asks
                             MHD_OPTION_LISTEN_SOCKET, fd.get(),
                             MHD_OPTION_THREAD_POOL_SIZE, static_cast<unsigned>(threads),
                             MHD_OPTION_CONNECTION_LIMIT, static_cast<unsigned>(max_connections),
                             MHD_OPTION_CONNECTION_TIMEOUT, static_cast<unsigned>(10),
                             MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<size_t>(64 * 1024),
                             MHD_OPTION_NOTIFY_COMPLETED, &HttpServer::onCompleted, this,
                             MHD_OPTION_END);
  if (daemon_ == nullptr) {
    MG_LOG_ERR("fatal: cannot start the HTTP server (libmicrohttpd)");
    return false;
  }
  fd.release();  // libmicrohttpd closes it at MHD_stop_daemon
  return true;
}

void HttpServer::stop() {
  if (daemon_ == nullptr) return;
  MHD_stop_daemon(daemon_);
  daemon_ = nullptr;
}

void HttpServer::onCompleted(void*, MHD_Connection*, void** request_state, MHD_RequestTerminationCode) {
  delete static_cast<RequestState*>(*request_state);
  *request_state = nullptr;
}

MHD_Result HttpServer::onRequest(void* cls, MHD_Connection* connection, const char* url, const char* method,
                                 const char*, const char* upload_data, size_t* upload_data_size,
                                 void** request_state) {
  auto* state = static_cast<RequestState*>(*request_state);
  if (state == nullptr) {
    *request_state = new RequestState;
    return MHD_YES;
  }
  if (*upload_data_size > 0) {
    if (state->body.size() + *upload_data_size > kMaxWebBody) state->too_large = true;
    else state->body.append(upload_data, *upload_data_size);
    *upload_data_size = 0;
    return MHD_YES;
  }
  return static_cast<HttpServer*>(cls)->answer(connection, url, method, state->body, state->too_large);
}

MHD_Result HttpServer::answer(MHD_Connection* connection, const char* url, const char* method,
                              const std::string& body, bool too_large) {
  const std::shared_ptr<const Config> config = live_.get();
  const WebRequest request = routeWebRequest(method, url);
  const std::string client = clientAddress(connection);
  switch (request.route) {
    case WebRoute::Health: return send(connection, MHD_HTTP_OK, kHealthText);
    case WebRoute::NotFound:
    {
      // A path under /u/ may hold a token (e.g. /u/TOKEN/): never logged.
      std::string_view path(url);
      if (path.starts_with("/u/")) path = "/u/...";
      MG_LOG_INFO("web: %s %s: not found (client %s)", printable(method, 16).c_str(), printable(path, 64).c_str(),
                  client.c_str());
    }
      return send(connection, MHD_HTTP_NOT_FOUND, kNotFoundText);
    case WebRoute::MethodNotAllowed:
      MG_LOG_INFO("web: %s: method not allowed (client %s)", printable(method, 16).c_str(), client.c_str());
      return send(connection, MHD_HTTP_METHOD_NOT_ALLOWED, kMethodText);
    case WebRoute::Unsubscribe:
    case WebRoute::Confirm: break;
  }
  const TokenCheck check = verifyUnsubscribeToken(request.token, config->web_secrets, std::time(nullptr),
                                                  config->unsubscribe_token_lifetime);
  if (!check.ok()) {
    const char* why = tokenErrorText(check.error);
    MG_LOG_INFO("web: %s /u/: %s (client %s)", method, why, client.c_str());
    return send(connection, MHD_HTTP_BAD_REQUEST, std::string(why) + "\n");
  }
  const UnsubscribeToken& token = *check.token;
  if (request.route == WebRoute::Confirm) {
    MG_LOG_INFO("%s: web: confirmation page account=%s rcpt=%s campaign=%s (client %s)", token.queue_id.c_str(),
                token.account.c_str(), token.recipient.c_str(), token.campaign.c_str(), client.c_str());
    return send(connection, MHD_HTTP_OK, confirmationPage(token.account, token.recipient), "text/html; charset=utf-8");
  }
  if (too_large) {
    MG_LOG_INFO("%s: web: body too large (client %s)", token.queue_id.c_str(), client.c_str());
    return send(connection, MHD_HTTP_CONTENT_TOO_LARGE, kTooLargeText);
  }
  const char* type = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
  if (!isOneClickBody(type != nullptr ? type : "", body)) {
    MG_LOG_INFO("%s: web: bad body (client %s)", token.queue_id.c_str(), client.c_str());
    return send(connection, MHD_HTTP_BAD_REQUEST, kBadBodyText);
  }
  auto plan = planUnsubscribe(*config, token, nowMillis());
  if (!plan) {
    MG_LOG_INFO("%s: web: %s (client %s)", token.queue_id.c_str(), plan.error().message.c_str(), client.c_str());
    return send(connection, MHD_HTTP_BAD_REQUEST, plan.error().message + "\n");
  }
  Result<bool> added = Error{Error::Kind::Unavailable, "no Redis connection"};
  if (auto redis = redis_.acquire()) added = recordUnsubscribe(**redis, *plan);
  else added = redis.error();
  if (!added) {
    MG_LOG_ERR("%s: web: cannot record the unsubscribe of %s from %s: %s", token.queue_id.c_str(),
               plan->event.rcpt.c_str(), token.account.c_str(), added.error().message.c_str());
    return send(connection, MHD_HTTP_SERVICE_UNAVAILABLE, kUnavailableText);
  }
  MG_LOG_INFO("%s: web: %s account=%s rcpt=%s campaign=%s (client %s)", token.queue_id.c_str(),
              *added ? "unsubscribed" : "already unsubscribed", token.account.c_str(), plan->event.rcpt.c_str(),
              token.campaign.c_str(), client.c_str());
  return send(connection, MHD_HTTP_OK, kUnsubscribedText);
}

}  // namespace mailgate::web
