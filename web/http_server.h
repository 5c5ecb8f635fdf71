// http_server.h — mailgate-web's HTTP server: libmicrohttpd in epoll mode
// with a thread pool on an already bound socket, answering the routes of
// web_request.h with a configuration snapshot per request.
#pragma once

#include <microhttpd.h>

#include "mailgate/listen.h"
#include "mailgate/live_config.h"
#include "mailgate/redis.h"

namespace mailgate::web {

class HttpServer {
 public:
  HttpServer(const LiveConfig& live, RedisPool& redis) : live_(live), redis_(redis) {}
  ~HttpServer() { stop(); }
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Serves on `fd` (listening) with `threads` threads, at most
  // `max_connections` at a time; false (logged) when libmicrohttpd fails.
  bool start(UniqueFd fd, unsigned threads, unsigned max_connections);
  // Stops accepting, finishes the requests in hand and joins the threads.
  void stop();

 private:
  static MHD_Result onRequest(void* cls, MHD_Connection* connection, const char* url, const char* method,
                              const char* version, const char* upload_data, size_t* upload_data_size,
                              void** request_state);
  static void onCompleted(void* cls, MHD_Connection* connection, void** request_state,
                          MHD_RequestTerminationCode code);
  MHD_Result answer(MHD_Connection* connection, const char* url, const char* method, const std::string& body,
                    bool too_large);

  const LiveConfig& live_;
  RedisPool& redis_;
  MHD_Daemon* daemon_ = nullptr;
};

}  // namespace mailgate::web
