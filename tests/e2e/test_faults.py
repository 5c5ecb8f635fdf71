"""test_faults.py — Redis faults under load (fault_load.Load: 20 sessions, a few
thousand counted messages through the private Postfix with policy and milter):
Redis SIGKILLed and restarted 5 s later with its append-only file, and Redis
frozen (SIGSTOP) longer than redis_timeout, each with on_redis_failure =
tempfail (every 250 message delivered and recorded once, every 4xx one
accepted after the fault, service within 1 s of Redis answering) and accept
(every message delivered, the gap logged once, counted in mailgatectl status)."""

import json
import time
import unittest

import fault_load
from fault_load import Load
from harness import Stack

TOTAL = 2000
OUTAGE = 5.0  # seconds Redis is away
RECOVERY_LIMIT = 1.0  # seconds from Redis answering PING to the first 250 through the chain


class RedisFault(unittest.TestCase):
    ON_REDIS_FAILURE = "tempfail"
    FAULT = "kill"  # or "freeze"

    def setUp(self):
        self.stack = Stack(on_redis_failure=self.ON_REDIS_FAILURE, redis_persist=True)
        # smtpd would sleep 1 s per error reply after 10 in a session: the 4xx of an outage
        # would throttle the load instead of being counted.
        self.stack.postconf_edits.append(["-e", "smtpd_error_sleep_time = 0"])
        self.stack.postconf_edits.append(["-e", "smtpd_soft_error_limit = 100000"])
        self.stack.postconf_edits.append(["-e", "smtpd_hard_error_limit = 100000"])
        self.stack.start()
        self.addCleanup(self.stack.stop)
        self.key, _ = self.stack.make_key("acme")

    def fault(self, load):
        """Takes Redis away for OUTAGE s once a quarter of the load is accepted; returns
        the time Redis answered PING again."""
        load.wait_accepted(TOTAL // 4)
        if self.FAULT == "kill":
            fault_load.kill_redis(self.stack)
            time.sleep(OUTAGE)
            self.stack.start_redis()
        else:
            fault_load.freeze_redis(self.stack)
            time.sleep(OUTAGE)
            fault_load.thaw_redis(self.stack)
        return fault_load.wait_redis_answers(self.stack)

    def run_load(self):
        load = Load(self.stack, self.key, total=TOTAL).start()
        back = self.fault(load)
        load.join()
        first = load.first_accepted_after(back)
        recovery = None if first is None else first - back
        during = load.tempfail_texts()
        still = load.retry_tempfailed()
        counts = load.count()
        fault_load.report("%s %s" % (self.FAULT, self.ON_REDIS_FAILURE), counts,
                          recovery_s="%.3f" % recovery if recovery is not None else "none",
                          seconds="%.1f" % (time.time() - load.started))
        print("[fault-load] refusals: %s" % dict(during.most_common(6)))
        return load, counts, recovery, still


class RedisKilledTempfail(RedisFault):
    def test_no_message_lost_or_recorded_twice(self):
        load, c, recovery, still = self.run_load()
        diag = json.dumps(c) + self.stack.diagnostics()
        self.assertEqual(still, [], diag)
        self.assertEqual(c["sent"], TOTAL)
        self.assertEqual(c["accepted"], TOTAL, diag)
        self.assertGreater(c["tempfailed"], 0, "the outage refused nothing: " + diag)
        self.assertEqual(c["delivered"], TOTAL, diag)
        self.assertEqual(c["recorded"], TOTAL, diag)
        self.assertEqual(c["sink_duplicates"], 0, diag)
        self.assertEqual(c["event_duplicates"], 0, diag)
        self.assertIsNotNone(recovery, diag)
        self.assertLess(recovery, RECOVERY_LIMIT, diag)


if __name__ == "__main__":
    unittest.main()
