// cmd_webhook.cc — `mailgatectl webhook set|show|remove|test|failures NAME`:
// an account's webhook URL and secret, a signed test delivery, and the
// events mailgate-tracker gave up on.
#include <iostream>

#include "ctl.h"
#include "mailgate/crypto.h"
#include "mailgate/events.h"
#include "mailgate/webhook.h"

namespace mailgate::ctl {

int cmdWebhook(const Args& a) {
  const char* text = "webhook set NAME URL | webhook show|remove|test NAME | webhook failures NAME [--count N]";
  if (a.words.size() < 3) usage(text);
  const std::string &sub = a.words[1], &name = a.words[2];
  Context ctx(a);
  if (sub == "set" && a.words.size() == 4) {
    // The tracker refuses such addresses when it connects; an address
    // literal is refused here already.
    if (std::string range = refusedUrlHost(a.words[3], ctx.config.webhook_allow_networks); !range.empty()) {
      die("webhook URL host is a " + range + " address, which webhooks may not reach; "
          "allow its network with webhook_allow_networks (mailgate.conf(5))");
    }
    std::string secret = orDie(ctx.admin.setWebhook(name, a.words[3]));
    if (a.json) printJson({{"account", name}, {"url", a.words[3]}, {"secret", secret}});
    else std::cout << "webhook of " << name << " set to " << a.words[3] << "\nsecret: " << secret << "\n";
    return 0;
  }
  if (a.words.size() != 3) usage(text);
  if (sub == "show") {
    WebhookView v = orDie(ctx.admin.showWebhook(name));
    std::string fingerprint = sha256Hex(v.secret).substr(0, 12);
    if (a.json) {
      printJson({{"account", name}, {"url", v.url}, {"secret_sha256", fingerprint}, {"failures", v.failures}});
    } else {
      printTable({{"account:", name}, {"url:", v.url}, {"secret sha256:", fingerprint + "..."},
                  {"failures:", std::to_string(v.failures)}});
    }
    return 0;
  }
  if (sub == "remove") {
    orDie(ctx.admin.removeWebhook(name));
    if (a.json) printJson({{"account", name}, {"removed", true}});
    else std::cout << "webhook of " << name << " removed\n";
    return 0;
  }
  if (sub == "test") {
    WebhookView v = orDie(ctx.admin.showWebhook(name));
    Event e;
    e.time_ms = nowMillis();
    e.id = std::to_string(e.time_ms) + "-0";
    e.queue_id = "TEST00000";
    e.account = name;
    e.campaign = "test";
    e.from = "sender@example.com";
    e.rcpt = "recipient@example.com";
    e.message_id = "<test@mailgate>";
    e.status = "test";
    e.code = "2.0.0";
    e.text = "a test event sent by mailgatectl webhook test";
    WebhookClient client(ctx.config.webhook_timeout, ctx.config.webhook_allow_networks);
    HttpResult r = client.post(v.url, v.secret, {e});
    std::string url = loggableUrl(v.url);
    if (a.json) printJson({{"url", url}, {"status", r.status}, {"ok", r.ok()}, {"error", r.error}});
    else if (r.ok()) std::cout << "POST " << url << ": HTTP " << r.status << "\n";
    if (!r.ok()) die("POST " + url + ": " + r.error);
    return 0;
  }
  if (sub == "failures") {
    auto failures = orDie(ctx.admin.webhookFailures(name, a.count));
    if (a.json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& f : failures) {
        out.push_back({{"time", utcTimestamp(f.time_ms)}, {"attempts", f.attempts}, {"error", f.error},
                       {"event", nlohmann::json::parse(f.event, nullptr, false)}});
      }
      printJson(out);
      return 0;
    }
    std::vector<std::vector<std::string>> rows{{"TIME", "ATTEMPTS", "ERROR", "EVENT"}};
    for (const auto& f : failures) rows.push_back({utcTimestamp(f.time_ms), std::to_string(f.attempts), f.error, f.event});
    printTable(rows);
    if (failures.empty()) std::cout << "(no failures)\n";
    return 0;
  }
  usage(text);
}

}  // namespace mailgate::ctl
