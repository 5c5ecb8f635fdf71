// cmd_dkim_export.cc — `mailgatectl dkim export DIR`: writes the DKIM keys
// stored in Redis as files Exim's smtp transport signs with
// (contrib/exim/dkim.conf): DIR/<domain>.<selector>.pem and DIR/selectors
// ("domain: sel1:sel2", an lsearch file). Files are replaced atomically,
// keys no longer in Redis are removed, and every file gets DIR's group.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include "ctl.h"

namespace mailgate::ctl {
namespace {

namespace fs = std::filesystem;

// Writes `text` to `path` through a temporary file and rename(2).
void writeAtomically(const fs::path& path, const std::string& text, mode_t mode, gid_t group) {
  fs::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out.flush()) die(tmp.string() + ": cannot write");
  }
  if (chmod(tmp.c_str(), mode) != 0 || chown(tmp.c_str(), static_cast<uid_t>(-1), group) != 0) {
    die(tmp.string() + ": cannot set mode or group");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) die(path.string() + ": cannot replace");
}

}  // namespace

int cmdDkimExport(const Args& a, Context& ctx) {
  const fs::path dir = a.words[2];
  std::error_code ec;
  fs::create_directories(dir, ec);
  struct stat st {};
  if (ec || stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) die(dir.string() + ": not a directory");

  auto entries = orDie(ctx.admin.listDkimKeys(""));
  std::map<std::string, std::string> selectors;  // domain -> "sel1:sel2"
  std::set<std::string> written;
  for (const auto& e : entries) {
    std::string name = e.domain + "." + e.selector + ".pem";
    writeAtomically(dir / name, e.pem, 0640, st.st_gid);
    written.insert(name);
    std::string& list = selectors[e.domain];
    list += (list.empty() ? "" : ":") + e.selector;
  }
  std::string table = "# written by mailgatectl dkim export; do not edit\n";
  for (const auto& [domain, list] : selectors) table += domain + ": " + list + "\n";
  writeAtomically(dir / "selectors", table, 0644, st.st_gid);

  unsigned removed = 0;
  for (const auto& f : fs::directory_iterator(dir, ec)) {
    std::string name = f.path().filename().string();
    if (name.ends_with(".pem") && !written.count(name) && fs::remove(f.path(), ec)) ++removed;
  }
  if (a.json) {
    printJson({{"directory", dir.string()}, {"keys", written.size()}, {"domains", selectors.size()},
               {"removed", removed}});
  } else {
    std::cout << written.size() << " keys of " << selectors.size() << " domains exported to " << dir.string()
              << (removed ? ", " + std::to_string(removed) + " stale key files removed" : "") << "\n";
  }
  return 0;
}

}  // namespace mailgate::ctl
