// log.cc — syslog/stderr logging shared by the daemons and mailgatectl.
// Writes one line per call; never sees secrets (callers log key ids only).
#include "mailgate/log.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace mailgate {
namespace {

bool g_foreground = true;
bool g_verbose = false;
const char* g_ident = "mailgate";
std::mutex g_stderr_mutex;

const char* priorityName(int priority) {
  switch (priority) {
    case LOG_ERR: return "error";
    case LOG_WARNING: return "warning";
    case LOG_DEBUG: return "debug";
    default: return "info";
  }
}

}  // namespace

void logInit(const char* ident, bool foreground, bool verbose) {
  g_ident = ident;
  g_foreground = foreground;
  g_verbose = verbose;
  if (!foreground) {
    openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
    setlogmask(verbose ? LOG_UPTO(LOG_DEBUG) : LOG_UPTO(LOG_INFO));
  }
}

void logMsg(int priority, const char* fmt, ...) {
  if (priority == LOG_DEBUG && !g_verbose) return;
  char buf[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (!g_foreground) {
    syslog(LOG_MAIL | priority, "%s", buf);
    return;
  }
  std::lock_guard<std::mutex> lock(g_stderr_mutex);
  fprintf(stderr, "%s: %s: %s\n", g_ident, priorityName(priority), buf);
}

std::string printable(std::string_view s, size_t max_len) {
  std::string out;
  out.reserve(std::min(s.size(), max_len) + 3);
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == max_len) {
      out += "...";
      break;
    }
    unsigned char c = static_cast<unsigned char>(s[i]);
    out += (c < 0x20 || c == 0x7f) ? '?' : static_cast<char>(c);
  }
  return out;
}

}  // namespace mailgate
