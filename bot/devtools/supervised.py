"""Start the documented run path, `scripts/run.sh` (supervisord and all four parts), for fault tests and bench.

Each stack gets free ports, a temporary VAR_DIR and whatever environment the caller passes (e.g.
TRACKER_DB_URL), exactly as a user's `make run` with those variables would. Parts are found and
hurt through the supervisor (`run.sh ctl pid NAME`) and stopped with the run script's own Ctrl-C path.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bot.devtools.stack import ROOT, base_env, free_port, http_json, wait_until
from bot.devtools.twilio_requests import TEST_AUTH_TOKEN

PARTS = ("actions", "rasa", "web", "review", "alerts", "outreach")


def listening_addresses(port: int) -> set[str]:
    """The local addresses a TCP port is listening on, read from /proc/net/tcp (IPv4, hex)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                if len(address) == 8:
                    found.add(".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)))
                else:
                    found.add("::" if set(address) == {"0"} else address)
    return found


@dataclass
class SupervisedStack:
    """`scripts/run.sh` running on free ports. Use as a context manager."""

    env: dict[str, str] = field(default_factory=dict)
    token: str = field(default_factory=lambda: secrets.token_hex(16))

    def __post_init__(self) -> None:
        self.ports = {name: free_port() for name in ("rasa", "actions", "web", "review")}
        self.var_dir = Path(tempfile.mkdtemp(prefix="clinic-run-"))
        self.process: subprocess.Popen | None = None
        self.log = self.var_dir / "run.log"

    # --- addresses ---------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['rasa']}"

    @property
    def action_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['actions']}"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['web']}"

    @property
    def review_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['review']}"

    @property
    def sms_url(self) -> str:
        return f"{self.url}/webhooks/sms/webhook"

    def environment(self) -> dict[str, str]:
        return base_env({
            "VAR_DIR": str(self.var_dir),
            "RASA_PORT": str(self.ports["rasa"]),
            "ACTION_PORT": str(self.ports["actions"]),
            "WEB_PORT": str(self.ports["web"]),
            "REVIEW_PORT": str(self.ports["review"]),
            "RASA_AUTH_TOKEN": self.token,
            "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN,
            "TWILIO_WEBHOOK_URL": "",
            "TRACKER_DB_URL": f"sqlite:///{self.var_dir / 'tracker.db'}",
            **self.env,
        })

    # --- life cycle --------------------------------------------------------------------------------
    def start(self, timeout_s: float = 240) -> SupervisedStack:
        handle = open(self.log, "w")
        self.process = subprocess.Popen(
            ["bash", str(ROOT / "scripts" / "run.sh")], cwd=ROOT, env=self.environment(),
            stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            wait_until(self.is_ready, timeout_s, "make run (scripts/run.sh)", self.process, self.log)
        except BaseException:
            self.stop()
            raise
        return self

    def is_ready(self) -> bool:
        return self.rasa_ready() and self.part_ok("actions") and self.part_ok("web") and self.part_ok("review")

    def rasa_ready(self) -> bool:
        status, body = http_json("GET", f"{self.url}/status?token={self.token}", timeout=2)
        return status == 200 and isinstance(body, dict) and bool(body.get("model_id"))

    def part_ok(self, name: str) -> bool:
        """The part answers HTTP (any status below 500); the alert and outreach workers, which have no port, are RUNNING."""
        if name in ("alerts", "outreach"):
            return self.status().get(name) == "RUNNING"
        url = {"actions": f"{self.action_url}/health", "web": f"{self.web_url}/health",
               "review": f"{self.review_url}/login", "rasa": f"{self.url}/"}[name]
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                return reply.status < 500
        except urllib.error.HTTPError as error:
            return error.code < 500
        except (OSError, ValueError):
            return False

    def ctl(self, *args: str) -> str:
        result = subprocess.run(["bash", str(ROOT / "scripts" / "run.sh"), "ctl", *args], cwd=ROOT,
                                env=self.environment(), capture_output=True, text=True, timeout=30)
        return result.stdout

    def status(self) -> dict[str, str]:
        states = {}
        for line in self.ctl("status").splitlines():
            parts = line.split()
            if len(parts) >= 2:
                states[parts[0]] = parts[1]
        return states

    def pid(self, name: str) -> int:
        text = self.ctl("pid", name).strip()
        if not text.isdigit() or int(text) == 0:
            raise RuntimeError(f"{name} has no process: {text!r}")
        return int(text)

    def pids(self) -> dict[str, int]:
        return {name: self.pid(name) for name in PARTS}

    def signal(self, name: str, sig: int) -> int:
        pid = self.pid(name)
        os.kill(pid, sig)
        return pid

    def wait_restarted(self, name: str, old_pid: int, timeout_s: float = 120) -> int:
        """Wait until the supervisor runs `name` again under a new pid and it answers; its new pid."""

        def back() -> bool:
            return self.status().get(name) == "RUNNING" and self.pid(name) != old_pid and (
                self.rasa_ready() if name == "rasa" else self.part_ok(name))

        wait_until(back, timeout_s, f"{name} restarted (or the run script)", self.process, self.log)
        return self.pid(name)

    def supervisor_log(self) -> str:
        path = self.var_dir / "supervisord.log"
        return path.read_text() if path.exists() else ""

    def restarts(self, name: str) -> int:
        return len(re.findall(rf"exited: {name} \(", self.supervisor_log()))

    def stop(self) -> None:
        try:
            for pid in self.pids().values():  # a part left stopped (SIGSTOP) must be able to exit
                try:
                    os.kill(pid, signal.SIGCONT)
                except OSError:
                    pass
        except (RuntimeError, OSError, subprocess.SubprocessError):
            pass
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # the run script's Ctrl-C path: supervisord stops every part
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        supervisor = self.var_dir / "supervisord.pid"  # still there if the run script died before it
        if supervisor.exists():
            try:
                os.kill(int(supervisor.read_text().strip()), signal.SIGTERM)
                wait_until(lambda: not supervisor.exists(), 60, "supervisord stopped")
            except (OSError, ValueError, TimeoutError):
                pass
        shutil.rmtree(self.var_dir, ignore_errors=True)

    def __enter__(self) -> SupervisedStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- talking to it -----------------------------------------------------------------------------
    def send(self, sender: str, message: str, timeout: float = 30.0) -> tuple[float, list[dict]]:
        """(seconds until the REST reply, the reply)."""
        started = time.perf_counter()
        status, body = http_json("POST", f"{self.url}/webhooks/rest/webhook?token={self.token}",
                                 {"sender": sender, "message": message}, timeout=timeout)
        assert status == 200, (status, body)
        return time.perf_counter() - started, body  # type: ignore[return-value]

    def tracker(self, sender: str) -> dict:
        status, body = http_json("GET", f"{self.url}/conversations/{sender}/tracker?token={self.token}")
        assert status == 200, (status, body)
        return body  # type: ignore[return-value]
