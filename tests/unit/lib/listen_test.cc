// listen_test.cc — UNIX listening sockets: created with socket_mode, and the
// access rights set on the socket itself, never through a path swapped for a
// symlink (root sets them in a directory the daemon's user may write).
#include "mailgate/listen.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace mailgate;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/mg-listen-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

unsigned modeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

}  // namespace

TEST(Listen, UnixSocketIsCreatedWithTheConfiguredMode) {
  TempDir dir;
  Endpoint endpoint;
  endpoint.kind = Endpoint::Kind::Unix;
  endpoint.path = dir.path + "/test.sock";
  mode_t before = umask(022);
  auto fd = listenOn(endpoint, 0660, "");
  ASSERT_TRUE(fd) << fd.error().message;
  EXPECT_EQ(modeOf(endpoint.path), 0660u);
  EXPECT_EQ(umask(before), 022u);  // restored
}

TEST(Listen, SocketAccessRefusesASymlinkAndLeavesItsTargetAlone) {
  TempDir dir;
  std::string target = dir.path + "/shadow";
  std::ofstream(target) << "secret\n";
  chmod(target.c_str(), 0600);
  std::string link = dir.path + "/test.sock";
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  Status s = setSocketAccess(link, 0666, "");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("not a socket"), std::string::npos) << s.error().message;
  EXPECT_EQ(modeOf(target), 0600u);
}

TEST(Listen, SocketAccessRefusesARegularFile) {
  TempDir dir;
  std::string file = dir.path + "/test.sock";  // e.g. a hard link to a file root owns
  std::ofstream(file) << "secret\n";
  chmod(file.c_str(), 0600);
  EXPECT_FALSE(setSocketAccess(file, 0666, ""));
  EXPECT_EQ(modeOf(file), 0600u);
}
