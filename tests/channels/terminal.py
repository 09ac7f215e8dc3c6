"""A command in a real pseudo-terminal, for the console tests (`make shell` uses prompt_toolkit, which needs a tty)."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time

from bot.devtools.stack import ROOT

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    """A command in a pseudo-terminal: type lines, wait for text on the screen."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, start_new_session=True,
            env={**os.environ, "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1", "PYTHONWARNINGS": "ignore", **env},
        )
        os.close(slave)
        self.raw = b""

    @property
    def screen(self) -> str:
        return ANSI.sub("", self.raw.decode("utf-8", errors="replace"))

    def _read(self, seconds: float) -> None:
        ready, _, _ = select.select([self.master], [], [], seconds)
        if ready:
            try:
                self.raw += os.read(self.master, 65536)
            except OSError:  # the command ended
                time.sleep(seconds)

    def wait_for(self, text: str, after: int = 0, timeout_s: float = 60) -> int:
        """Wait until `text` shows up after screen position `after`; its position."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.screen.find(text, after)
            if found >= 0:
                return found
            self._read(0.2)
        raise AssertionError(f"{text!r} did not show up; the screen:\n{self.screen[-3000:]}")

    def type(self, line: str) -> int:
        position = len(self.screen)
        os.write(self.master, line.encode() + b"\r")
        return position

    def finish(self, timeout_s: float = 20) -> int:
        deadline = time.monotonic() + timeout_s
        while self.process.poll() is None and time.monotonic() < deadline:
            self._read(0.2)
        if self.process.poll() is None:
            os.killpg(self.process.pid, 9)
        code = self.process.wait(5)
        os.close(self.master)
        return code
