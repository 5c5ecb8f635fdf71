// http_receiver.h — a webhook receiver for the tests: a loopback HTTP/1.1
// server on its own thread (poll, keep-alive connections) that answers every
// request with a fixed status, counts the connections it accepted and keeps
// the requests and the event ids of the bodies it answered with a 2xx.
#pragma once

#include <arpa/inet.h>
#include <atomic>
#include <cctype>
#include <gtest/gtest.h>
#include <mutex>
#include <netinet/in.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>

namespace mailgate::testing {

class HttpReceiver {
 public:
  // Listens on 127.0.0.1:`port` (0 = any free port).
  explicit HttpReceiver(uint16_t port = 0, int status = 200) : status_(status) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(listen_fd_, 64) != 0) {
      ADD_FAILURE() << "cannot listen on port " << port;
    }
    socklen_t len = sizeof a;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~HttpReceiver() {
    stop_ = true;
    thread_.join();
    for (auto& c : clients_) close(c.fd);
    close(listen_fd_);
  }
  HttpReceiver(const HttpReceiver&) = delete;
  HttpReceiver& operator=(const HttpReceiver&) = delete;

  uint16_t port() const { return port_; }
  std::string url(const std::string& path = "/hook") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  size_t accepts() const { return accepts_.load(); }
  size_t requests() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_.size();
  }
  // The request heads (request line and header fields) in arrival order.
  std::vector<std::string> heads() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }
  // The ids of the events answered with a 2xx, in arrival order.
  std::vector<std::string> ids() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return ids_;
  }
  size_t idCount() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return ids_.size();
  }

 private:
  struct Client {
    int fd;
    std::string in;
  };

  void run() {
    while (!stop_) {
      std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
      for (const auto& c : clients_) fds.push_back({c.fd, POLLIN, 0});
      if (poll(fds.data(), fds.size(), 20) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
          ++accepts_;
          clients_.push_back({fd, ""});
        }
      }
      for (size_t i = 1; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        Client& c = clients_[i - 1];
        char buf[65536];
        ssize_t n = recv(c.fd, buf, sizeof buf, 0);
        if (n <= 0) {
          close(c.fd);
          c.fd = -1;
          continue;
        }
        c.in.append(buf, static_cast<size_t>(n));
        while (answer(c)) {
        }
      }
      std::erase_if(clients_, [](const Client& c) { return c.fd < 0; });
    }
  }

  // Answers one complete request at the front of c.in; false when none.
  bool answer(Client& c) {
    size_t end = c.in.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    std::string head = c.in.substr(0, end);
    size_t length = 0;
    std::string lower = head;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (size_t at = lower.find("\r\ncontent-length:"); at != std::string::npos) {
      length = std::stoul(head.substr(at + 17));
    }
    if (c.in.size() < end + 4 + length) return false;
    std::string body = c.in.substr(end + 4, length);
    c.in.erase(0, end + 4 + length);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      requests_.push_back(head);
      if (status_ / 100 == 2) {
        auto json = nlohmann::json::parse(body, nullptr, false);
        if (json.is_object() && json.contains("events")) {
          for (const auto& e : json["events"]) ids_.push_back(e.value("id", ""));
        }
      }
    }
    std::string reply = "HTTP/1.1 " + std::to_string(status_) + " X\r\nContent-Length: 0\r\n\r\n";
    if (send(c.fd, reply.data(), reply.size(), MSG_NOSIGNAL) < 0) {
      close(c.fd);
      c.fd = -1;
      return false;
    }
    return true;
  }

  int status_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> accepts_{0};
  mutable std::mutex mutex_;
  std::vector<std::string> requests_, ids_;
  std::vector<Client> clients_;
  std::thread thread_;
};

}  // namespace mailgate::testing
