// web_request.h — what mailgate-web answers, decided without I/O: the route
// of a request (method and path), whether a POST body is the RFC 8058
// one-click form, and the texts and page it sends. The HTTP server
// (web/http_server.cc) and Redis writes (unsubscribe_record.h) are elsewhere.
#pragma once

#include <string>
#include <string_view>

namespace mailgate {

enum class WebRoute {
  Unsubscribe,         // POST /u/TOKEN
  Confirm,             // GET or HEAD /u/TOKEN: the confirmation page
  Health,              // GET or HEAD /healthz
  NotFound,            // 404
  MethodNotAllowed,    // 405
};

struct WebRequest {
  WebRoute route = WebRoute::NotFound;
  std::string token;  // for Unsubscribe and Confirm: the path after /u/
};

// The route of `method` `path` (the path without its query string).
WebRequest routeWebRequest(std::string_view method, std::string_view path);

// The largest POST body read; a longer one is refused (413).
constexpr size_t kMaxWebBody = 4096;

// RFC 8058 section 3.1: the body "List-Unsubscribe=One-Click", form-encoded
// (application/x-www-form-urlencoded) or as the one field of a
// multipart/form-data body; an empty body (the confirmation page's button
// without its field) is accepted too.
bool isOneClickBody(std::string_view content_type, std::string_view body);

// Plain texts of the answers (each ends with a newline).
constexpr const char* kUnsubscribedText = "unsubscribed\n";
constexpr const char* kNotFoundText = "not found\n";
constexpr const char* kMethodText = "method not allowed\n";
constexpr const char* kBadBodyText = "bad request body: expected List-Unsubscribe=One-Click\n";
constexpr const char* kTooLargeText = "request body too large\n";
constexpr const char* kUnavailableText = "service unavailable, try again later\n";
constexpr const char* kHealthText = "ok\n";

// &, <, >, " and ' as HTML character references.
std::string htmlEscape(std::string_view text);

// The page GET /u/TOKEN shows: who is unsubscribed from which account's
// mail, and a button that POSTs the one-click form to the same URL.
std::string confirmationPage(std::string_view account, std::string_view recipient);

}  // namespace mailgate
