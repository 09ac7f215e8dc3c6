"""Start the real bot (action server + Rasa server) for tests and benchmarks.

Each stack gets free ports, its own endpoints file and whatever environment the test
passes (e.g. TRACKER_DB_URL, TWILIO_AUTH_TOKEN), and is stopped afterwards.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
MODEL = ROOT / "models" / "clinic.tar.gz"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "RASA_TELEMETRY_ENABLED": "false",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
            "PYTHONWARNINGS": "ignore",
        }
    )
    env.update(extra or {})
    return env


def http_json(method: str, url: str, body: object | None = None, timeout: float = 30.0,
              headers: dict[str, str] | None = None) -> tuple[int, object]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            raw = reply.read()
            return reply.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw)
        except ValueError:
            return error.code, raw.decode(errors="replace")


def wait_until(check, timeout_s: float, what: str, process: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with code {process.returncode}\n{tail}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.3)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"{what} not ready after {timeout_s}s\n{tail}")


@dataclass
class BotStack:
    """A running action server + Rasa server. Use as a context manager."""

    env: dict[str, str] = field(default_factory=dict)
    with_actions: bool = True
    model: Path = MODEL
    token: str = field(default_factory=lambda: secrets.token_hex(16))

    def __post_init__(self) -> None:
        self.rasa_port = free_port()
        self.action_port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="clinic-stack-"))
        self.processes: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    @property
    def action_url(self) -> str:
        return f"http://127.0.0.1:{self.action_port}"

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = self.workdir / f"{name}.log"
        self.logs[name] = log
        handle = open(log, "w")
        env = base_env({"RASA_AUTH_TOKEN": self.token, **self.env})
        process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes[name] = process
        return process

    def start_actions(self) -> None:
        process = self._spawn(
            "actions", [str(VENV_BIN / "rasa"), "run", "actions", "--actions", "actions", "--port", str(self.action_port)]
        )
        wait_until(lambda: http_json("GET", f"{self.action_url}/health", timeout=2)[0] == 200, 60, "action server",
                   process, self.logs["actions"])

    def stop_actions(self) -> None:
        self._stop("actions")

    def start(self) -> BotStack:
        if not self.model.exists():
            raise FileNotFoundError(f"No trained model at {self.model}; run `make model` first.")
        endpoints = (ROOT / "endpoints.yml").read_text().replace(
            "http://127.0.0.1:5055/webhook", f"{self.action_url}/webhook"
        )
        (self.workdir / "endpoints.yml").write_text(endpoints)
        if self.with_actions:
            self.start_actions()
        process = self._spawn(
            "rasa",
            [
                str(VENV_BIN / "rasa"), "run", "--model", str(self.model), "--port", str(self.rasa_port),
                "--interface", "127.0.0.1", "--enable-api", "--auth-token", self.token,
                "--endpoints", str(self.workdir / "endpoints.yml"), "--credentials", str(ROOT / "credentials.yml"),
                "--cors", "*",
            ],
        )
        wait_until(self.is_ready, 180, "rasa server", process, self.logs["rasa"])
        return self

    def is_ready(self) -> bool:
        status, body = http_json("GET", f"{self.url}/status?token={self.token}", timeout=2)
        return status == 200 and isinstance(body, dict) and bool(body.get("model_id"))

    def _stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def stop(self) -> None:
        for name in list(self.processes):
            self._stop(name)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> BotStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- talking to it -------------------------------------------------------
    def send(self, sender: str, message: str) -> list[dict]:
        status, body = http_json(
            "POST", f"{self.url}/webhooks/rest/webhook?token={self.token}", {"sender": sender, "message": message}
        )
        assert status == 200, (status, body)
        return body  # type: ignore[return-value]

    def ask(self, sender: str, message: str) -> str:
        return "\n".join(m.get("text", "") for m in self.send(sender, message) if m.get("text"))

    def tracker(self, sender: str) -> dict:
        status, body = http_json("GET", f"{self.url}/conversations/{sender}/tracker?token={self.token}")
        assert status == 200, (status, body)
        return body  # type: ignore[return-value]
