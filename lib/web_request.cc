// web_request.cc — mailgate-web's routes, the one-click body check and the
// texts and confirmation page it answers with (pure).
#include "mailgate/web_request.h"

#include "mailgate/address.h"

namespace mailgate {

WebRequest routeWebRequest(std::string_view method, std::string_view path) {
  WebRequest r;
  const bool get = method == "GET" || method == "HEAD";
  if (path == "/healthz") {
    r.route = get ? WebRoute::Health : WebRoute::MethodNotAllowed;
    return r;
  }
  constexpr std::string_view kPrefix = "/u/";
  if (!path.starts_with(kPrefix) || path.size() == kPrefix.size() ||
      path.find('/', kPrefix.size()) != std::string_view::npos) {
    r.route = WebRoute::NotFound;
    return r;
  }
  r.token = std::string(path.substr(kPrefix.size()));
  r.route = method == "POST" ? WebRoute::Unsubscribe : get ? WebRoute::Confirm : WebRoute::MethodNotAllowed;
  return r;
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

// The media type of a Content-Type value, lower case, without parameters.
std::string mediaType(std::string_view content_type) {
  return toLower(trim(content_type.substr(0, content_type.find(';'))));
}

// A multipart/form-data body whose one part is field List-Unsubscribe with
// value One-Click (part headers and boundary lines around it).
bool isOneClickMultipart(std::string_view body) {
  size_t name = body.find("name=\"List-Unsubscribe\"");
  if (name == std::string_view::npos) return false;
  size_t blank = body.find("\r\n\r\n", name);
  if (blank == std::string_view::npos) return false;
  std::string_view rest = body.substr(blank + 4);
  size_t end = rest.find("\r\n--");
  if (end == std::string_view::npos) return false;
  return rest.substr(0, end) == "One-Click";
}

}  // namespace

bool isOneClickBody(std::string_view content_type, std::string_view body) {
  if (trim(body).empty()) return true;
  std::string type = mediaType(content_type);
  if (type == "multipart/form-data") return isOneClickMultipart(body);
  if (type != "application/x-www-form-urlencoded" && !type.empty()) return false;
  return trim(body) == "List-Unsubscribe=One-Click";
}

std::string htmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string confirmationPage(std::string_view account, std::string_view recipient) {
  // No action attribute: the form posts to the URL the page was served from
  // (whatever the reverse proxy's prefix).
  return "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><meta name=\"robots\" content=\"noindex\">"
         "<title>Unsubscribe</title></head>\n<body>\n<p>Stop mail from " +
         htmlEscape(account) + " to " + htmlEscape(recipient) +
         "?</p>\n<form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">"
         "<button type=\"submit\">Unsubscribe</button></form>\n</body></html>\n";
}

}  // namespace mailgate
