// log.h — logging for all daemons: syslog facility mail (or stderr in the
// foreground), one line per decision, printf-style. Client strings pass
// through printable() so control characters never reach the log.
#pragma once

#include <string>
#include <string_view>
#include <syslog.h>

namespace mailgate {

// Opens syslog with `ident` (facility LOG_MAIL), or logs to stderr when
// `foreground` is true. `verbose` enables LOG_DEBUG lines.
void logInit(const char* ident, bool foreground, bool verbose);

void logMsg(int priority, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

#define MG_LOG_INFO(...) ::mailgate::logMsg(LOG_INFO, __VA_ARGS__)
#define MG_LOG_WARN(...) ::mailgate::logMsg(LOG_WARNING, __VA_ARGS__)
#define MG_LOG_ERR(...) ::mailgate::logMsg(LOG_ERR, __VA_ARGS__)
#define MG_LOG_DEBUG(...) ::mailgate::logMsg(LOG_DEBUG, __VA_ARGS__)

// Copy of `s` with control characters (and DEL) replaced by '?', cut at
// `max_len` bytes with "..." appended.
std::string printable(std::string_view s, size_t max_len = 256);

}  // namespace mailgate
