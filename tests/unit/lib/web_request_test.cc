// web_request_test.cc — mailgate-web's routes, the RFC 8058 body check and
// the confirmation page (escaped, a POST form, no action URL).
#include <gtest/gtest.h>

#include "mailgate/web_request.h"

using namespace mailgate;

TEST(WebRequest, Routes) {
  EXPECT_EQ(routeWebRequest("POST", "/u/abc").route, WebRoute::Unsubscribe);
  EXPECT_EQ(routeWebRequest("POST", "/u/abc").token, "abc");
  EXPECT_EQ(routeWebRequest("GET", "/u/abc").route, WebRoute::Confirm);
  EXPECT_EQ(routeWebRequest("HEAD", "/u/abc").route, WebRoute::Confirm);
  EXPECT_EQ(routeWebRequest("PUT", "/u/abc").route, WebRoute::MethodNotAllowed);
  EXPECT_EQ(routeWebRequest("DELETE", "/u/abc").route, WebRoute::MethodNotAllowed);
  EXPECT_EQ(routeWebRequest("GET", "/u/").route, WebRoute::NotFound);
  EXPECT_EQ(routeWebRequest("GET", "/u/a/b").route, WebRoute::NotFound);
  EXPECT_EQ(routeWebRequest("GET", "/").route, WebRoute::NotFound);
  EXPECT_EQ(routeWebRequest("POST", "/unsubscribe").route, WebRoute::NotFound);
  EXPECT_EQ(routeWebRequest("GET", "/healthz").route, WebRoute::Health);
  EXPECT_EQ(routeWebRequest("POST", "/healthz").route, WebRoute::MethodNotAllowed);
}

TEST(WebRequest, OneClickBodies) {
  EXPECT_TRUE(isOneClickBody("application/x-www-form-urlencoded", "List-Unsubscribe=One-Click"));
  EXPECT_TRUE(isOneClickBody("Application/X-WWW-Form-Urlencoded; charset=utf-8", "List-Unsubscribe=One-Click\r\n"));
  EXPECT_TRUE(isOneClickBody("", "List-Unsubscribe=One-Click"));
  EXPECT_TRUE(isOneClickBody("", ""));
  EXPECT_TRUE(isOneClickBody("application/x-www-form-urlencoded", ""));
  EXPECT_TRUE(isOneClickBody("multipart/form-data; boundary=XX",
                             "--XX\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n"
                             "One-Click\r\n--XX--\r\n"));
  EXPECT_FALSE(isOneClickBody("multipart/form-data; boundary=XX",
                              "--XX\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n"
                              "No\r\n--XX--\r\n"));
  EXPECT_FALSE(isOneClickBody("application/x-www-form-urlencoded", "List-Unsubscribe=No"));
  EXPECT_FALSE(isOneClickBody("application/json", "{\"List-Unsubscribe\":\"One-Click\"}"));
}

TEST(WebRequest, ConfirmationPageIsEscapedAndPosts) {
  std::string page = confirmationPage("acme", "\"<x>&\"@example.net");
  EXPECT_NE(page.find("&quot;&lt;x&gt;&amp;&quot;@example.net"), std::string::npos);
  EXPECT_EQ(page.find("<x>"), std::string::npos);
  EXPECT_NE(page.find("<form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">"),
            std::string::npos);
  EXPECT_EQ(page.find("action="), std::string::npos);
}
