"""The alert worker as a process, and a RabbitMQ node of its own, for the alert tests and `make bench`.

`AlertWorkerProcess` runs `python -m bot.alerts worker` exactly as `scripts/run.sh part alerts` does,
with the environment given; it can be killed (SIGKILL: no chance to tidy up) and started again.
`PrivateRabbitMQ` starts a real RabbitMQ node (the Debian rabbitmq-server) on a free port with its own
data directory, so a test can stop and restart the broker without touching the machine's RabbitMQ.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from bot.devtools.stack import ROOT, base_env, free_port, wait_until

RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


class AlertWorkerProcess:
    def __init__(self, env: dict[str, str], args: tuple[str, ...] = (), log: Path | None = None):
        self.env = env
        self.args = args
        self.log = log or Path(tempfile.mkstemp(prefix="alert-worker-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None

    def start(self) -> AlertWorkerProcess:
        handle = open(self.log, "a")
        self.process = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "python"), "-m", "bot.alerts", "worker", *self.args], cwd=ROOT,
            env=base_env(self.env), stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: "Alert worker started" in self.log.read_text(), 60, "alert worker", self.process,
                   self.log)
        return self

    def kill(self) -> None:
        """SIGKILL: the worker gets no chance to finish anything (a crash)."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def __enter__(self) -> AlertWorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class PrivateRabbitMQ:
    """A RabbitMQ node on 127.0.0.1:<free port>, data in a temporary directory kept across restarts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dist_port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="alert-rabbitmq-"))
        self.node = f"alerttest{self.port}@localhost"
        self.process: subprocess.Popen | None = None

    @staticmethod
    def available() -> bool:
        return RABBITMQ_SERVER.exists()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def start(self, timeout_s: float = 60) -> PrivateRabbitMQ:
        env = dict(os.environ)
        env.update({
            "RABBITMQ_NODENAME": self.node, "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port), "RABBITMQ_MNESIA_BASE": str(self.directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.directory / "log"), "RABBITMQ_PID_FILE": str(self.directory / "pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.directory / "plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.directory / "none"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.directory / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(self.directory / "env.conf"),  # not the machine's /etc/rabbitmq
        })
        log = open(self.directory / "server.log", "a")
        self.process = subprocess.Popen([str(RABBITMQ_SERVER)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        wait_until(lambda: _listening(self.port), timeout_s, "RabbitMQ", self.process, self.directory / "server.log")
        return self

    def stop(self) -> None:
        """Stop the node the way a service manager does (SIGTERM, graceful), and wait for it."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        deadline = time.monotonic() + 10
        while _listening(self.port) and time.monotonic() < deadline:
            time.sleep(0.2)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PrivateRabbitMQ:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
