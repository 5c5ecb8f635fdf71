// cmd_dkim_export.cc — `mailgatectl dkim export DIR [--group G]`: writes the
// DKIM keys stored in Redis as the files Exim's smtp transport signs with
// (contrib/exim/dkim.conf): DIR/<domain>.<selector>.pem and DIR/owners
// ("domain.selector: account", an lsearch file; empty: no account owns it).
// Files are created 0600 without following links, given group G and 0640
// before a byte is written, then renamed into place; a DIR that G (the group
// Exim runs as) cannot read is refused; keys no longer in Redis are removed.
// Exports into one DIR run one at a time (flock on DIR); a DIR others than
// root may change is refused.
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <set>

#include "ctl.h"
#include "mailgate/listen.h"

namespace mailgate::ctl {
namespace {

namespace fs = std::filesystem;

constexpr const char* kDefaultGroup = "Debian-exim";

std::string errnoText() { return std::strerror(errno); }

// "0700 root:root"
std::string describe(const struct stat& st) {
  char mode[8];
  snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  const struct passwd* pw = getpwuid(st.st_uid);
  const struct group* gr = getgrgid(st.st_gid);
  return std::string(mode) + " " + (pw ? pw->pw_name : std::to_string(st.st_uid)) + ":" +
         (gr ? gr->gr_name : std::to_string(st.st_gid));
}

// The permission bits a member of `gid` (not the owner) gets on `st`.
mode_t groupBits(const struct stat& st, gid_t gid) {
  return st.st_gid == gid ? (st.st_mode >> 3) & 07 : st.st_mode & 07;
}

// Refuses (exit 1) a parent of DIR the group cannot enter, or a DIR it
// cannot list: Exim would find no key and send every message unsigned.
void checkParents(const fs::path& dir, const std::string& group, gid_t gid) {
  struct stat st {};
  for (fs::path p = dir.parent_path(); !p.empty(); p = p.parent_path()) {
    if (stat(p.c_str(), &st) != 0) die(p.string() + ": " + errnoText());
    if ((groupBits(st, gid) & 01) != 01) {
      die(p.string() + ": group " + group + " cannot enter this directory (" + describe(st) + "), so Exim would "
          "send mail unsigned; run chmod o+x " + p.string());
    }
    if (p == p.root_path()) break;
  }
}

void checkReadable(const fs::path& dir, const std::string& group, gid_t gid) {
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) die(dir.string() + ": not a directory");
  if ((groupBits(st, gid) & 05) != 05) {
    die(dir.string() + ": group " + group + " cannot read this directory (" + describe(st) +
        "), so Exim would send mail unsigned; run chgrp " + group + " " + dir.string() + " && chmod 0750 " +
        dir.string());
  }
}

// Refuses (exit 1) a DIR, a directory above it or a link on the way that
// someone but root may change (a sticky directory above DIR may be writable:
// its entries stay their owners'): a local user could swap the key files
// Exim signs with, or put a link there that takes this export's writes and
// its removal of stale *.pem files into another directory. Walks `path`
// (absolute) up to the root; the caller checks the resolved path too.
void checkWriters(const fs::path& path) {
  struct stat st {};
  for (fs::path p = path;; p = p.parent_path()) {
    if (lstat(p.c_str(), &st) != 0) die(p.string() + ": " + errnoText());
    const mode_t others = (st.st_gid == 0 ? 0 : S_IWGRP) | S_IWOTH;
    const bool writable = (st.st_mode & others) != 0 && !S_ISLNK(st.st_mode) && (p == path || !(st.st_mode & S_ISVTX));
    if ((st.st_uid != 0 && st.st_uid != geteuid()) || writable) {
      die(p.string() + ": others than root may change it (" + describe(st) + "), and so the keys Exim signs "
          "with; export into a directory only root can write");
    }
    if (p == p.root_path()) break;
  }
}

// A missing DIR is made root:GROUP 0750 (its parent must exist).
void ensureDirectory(const fs::path& dir, gid_t gid) {
  struct stat st {};
  if (lstat(dir.c_str(), &st) == 0) return;
  if (errno != ENOENT) die(dir.string() + ": " + errnoText());
  if (mkdir(dir.c_str(), 0700) != 0) die(dir.string() + ": cannot create: " + errnoText());
  if (chown(dir.c_str(), static_cast<uid_t>(-1), gid) != 0 || chmod(dir.c_str(), 0750) != 0) {
    die(dir.string() + ": cannot set group or mode: " + errnoText());
  }
}

// Writes `text` as DIR/name: a temporary DIR/name.tmp created with O_EXCL
// and O_NOFOLLOW (a link or file left there is removed, never followed), its
// group and mode set before the first byte, synced, then renamed over name.
int createExclusive(int dirfd, const std::string& tmp) {
  const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  int fd = openat(dirfd, tmp.c_str(), flags, 0600);
  if (fd < 0 && errno == EEXIST && unlinkat(dirfd, tmp.c_str(), 0) == 0) fd = openat(dirfd, tmp.c_str(), flags, 0600);
  return fd;
}

void writeAtomically(int dirfd, const fs::path& dir, const std::string& name, const std::string& text, gid_t gid) {
  std::string tmp = name + ".tmp";
  UniqueFd fd(createExclusive(dirfd, tmp));
  if (fd.get() < 0) die((dir / tmp).string() + ": cannot create: " + errnoText());
  if (fchown(fd.get(), static_cast<uid_t>(-1), gid) != 0 || fchmod(fd.get(), 0640) != 0) {
    die((dir / tmp).string() + ": cannot set group or mode: " + errnoText());
  }
  for (size_t done = 0; done < text.size();) {
    ssize_t n = write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die((dir / tmp).string() + ": cannot write: " + errnoText());
    done += static_cast<size_t>(n);
  }
  // Closed here, so that a failing close (a full disk with NFS) is seen.
  if (fsync(fd.get()) != 0 || ::close(fd.release()) != 0) {
    die((dir / tmp).string() + ": cannot write: " + errnoText());
  }
  if (renameat(dirfd, tmp.c_str(), dirfd, name.c_str()) != 0) {
    die((dir / name).string() + ": cannot replace: " + errnoText());
  }
}

}  // namespace

int cmdDkimExport(const Args& a, Context& ctx) {
  fs::path dir = fs::path(a.words[2]).lexically_normal();
  if (dir.filename().empty()) dir = dir.parent_path();  // "DIR/"
  const std::string group = a.group.empty() ? kDefaultGroup : a.group;
  const struct group* gr = getgrnam(group.c_str());
  if (gr == nullptr) die("group " + group + " does not exist; give the group Exim runs as with --group");
  const gid_t gid = gr->gr_gid;
  checkParents(fs::absolute(dir), group, gid);
  ensureDirectory(dir, gid);
  checkWriters(fs::absolute(dir));
  std::error_code resolve_error;
  fs::path real = fs::canonical(dir, resolve_error);
  if (resolve_error) die(dir.string() + ": " + resolve_error.message());
  checkWriters(real);
  checkReadable(dir, group, gid);
  UniqueFd dirfd(open(real.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (dirfd.get() < 0) die(dir.string() + ": " + errnoText());
  // One export at a time (cron and an admin): both write DIR/name.tmp, and
  // one would rename the other's half-written file into place.
  while (flock(dirfd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) die(dir.string() + ": cannot lock: " + errnoText());
  }

  auto entries = orDie(ctx.admin.listDkimKeys(""));
  std::set<std::string> written, domains;
  std::string owners = "# written by mailgatectl dkim export; do not edit\n";
  for (const auto& e : entries) {
    std::string name = e.domain + "." + e.selector + ".pem";
    writeAtomically(dirfd.get(), dir, name, e.pem, gid);
    written.insert(name);
    domains.insert(e.domain);
    owners += e.domain + "." + e.selector + ":" + (e.account.empty() ? "" : " " + e.account) + "\n";
  }
  writeAtomically(dirfd.get(), dir, "owners", owners, gid);

  unsigned removed = 0;
  std::error_code ec;
  for (const auto& f : fs::directory_iterator(real, ec)) {
    std::string name = f.path().filename().string();
    if (name.ends_with(".pem") && !written.count(name) && fs::remove(f.path(), ec)) ++removed;
  }
  if (a.json) {
    printJson({{"directory", dir.string()}, {"group", group}, {"keys", written.size()}, {"domains", domains.size()},
               {"removed", removed}});
  } else {
    std::cout << written.size() << " keys of " << domains.size() << " domains exported to " << dir.string()
              << " (group " << group << ")"
              << (removed ? ", " + std::to_string(removed) + " stale key files removed" : "") << "\n";
  }
  return 0;
}

}  // namespace mailgate::ctl
