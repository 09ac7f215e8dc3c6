"""Locust load test of the bot's REST channel: patients from tests/eval/ (loadtest/patients.py).

    locust -f loadtest/locustfile.py --headless --host http://127.0.0.1:5005 -u 50 -r 10 -t 60s \
        --token "$RASA_AUTH_TOKEN" --think-s 5 --pacing --log-file var/loadtest/run.jsonl --run-id run1

Each locust user is one patient at a time: it sends the messages of a session in order, in a new
conversation, then starts another session. `--think-s S --pacing` is the open loop: every patient sends a
message every S seconds on its own schedule, whatever the replies take (until a reply takes longer than S);
without --pacing a patient waits S seconds after each reply; `--think-s 0` is the closed loop (saturation).
Every message is logged to --log-file (JSON lines: conversation, turn number, text, red flag, send time,
latency, status, reply) for the exactly-once check (loadtest/check.py).
"""

from __future__ import annotations

import json
import random
import time
import uuid

from locust import HttpUser, events, task

from loadtest.patients import PatientSets

SETS = PatientSets()
_log = None


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    parser.add_argument("--token", default="", help="Rasa HTTP API token (the REST channel needs it)")
    parser.add_argument("--think-s", type=float, default=5.0, help="seconds between a patient's messages")
    parser.add_argument("--pacing", action="store_true", help="open loop: fixed schedule instead of waiting after replies")
    parser.add_argument("--log-file", default="", help="JSON lines of every message, for loadtest/check.py")
    parser.add_argument("--run-id", default="", help="prefix of the conversation ids of this run")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the patients' sessions")


@events.test_start.add_listener
def _open_log(environment, **_kwargs) -> None:
    global _log
    if environment.parsed_options.log_file:
        _log = open(environment.parsed_options.log_file, "a", buffering=1)


@events.test_stop.add_listener
def _close_log(environment, **_kwargs) -> None:
    if _log:
        _log.flush()


class Patient(HttpUser):
    """One patient at a time, typing the messages of a session in order."""

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.rng = random.Random(f"{options.seed}-{uuid.uuid4()}")
        self.think_s = options.think_s
        self.pacing = options.pacing
        self.next_at = time.monotonic() + self.rng.uniform(0, self.think_s)  # patients don't start in step
        self.session: list = []
        self.sender = ""
        self.turn = 0

    def wait_time(self) -> float:
        if not self.pacing:
            return self.think_s
        return max(0.0, self.next_at - time.monotonic())

    @task
    def send_next_message(self) -> None:
        options = self.environment.parsed_options
        if not self.session:
            self.session = SETS.session(self.rng)
            self.sender = f"{options.run_id}-{uuid.uuid4().hex[:12]}"
            self.turn = 0
        message = self.session.pop(0)
        self.turn += 1
        self.next_at += self.think_s
        sent_at = time.time()
        started = time.perf_counter()
        status, reply = 0, None
        with self.client.post(f"/webhooks/rest/webhook?token={options.token}", name="/webhooks/rest/webhook",
                              json={"sender": self.sender, "message": message.text}, catch_response=True) as response:
            status = response.status_code
            try:
                reply = response.json()
            except ValueError:
                reply = None
            if status != 200:
                response.failure(f"HTTP {status}")
            elif not isinstance(reply, list) or not reply:
                response.failure("no reply")
        if _log:
            _log.write(json.dumps({
                "sender": self.sender, "turn": self.turn, "text": message.text, "red_flag": message.red_flag,
                "sent_at": sent_at, "latency_s": time.perf_counter() - started, "status": status, "reply": reply,
            }) + "\n")
