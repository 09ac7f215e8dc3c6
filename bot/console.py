"""Chat in the terminal with the running bot: Rasa's own console (what `rasa shell` runs) over the REST channel.

    make shell                                   # after `make run`, in another terminal
    .venv/bin/python -m bot.console [--server URL] [--conversation-id ID] [--no-stream]

Why not `rasa shell`: it always starts a second Rasa server (its own port, the model loaded again, Rasa's
plain REST channel without our guard, token or conversation ownership) and its console sends no token.
This runs the same console, `rasa.core.channels.console.record_messages`, against the server `make run`
started: it posts each line to `{server}/webhooks/rest/webhook?stream=true&token=...` (the guarded REST
channel streams one JSON message a line) and prints the replies; `/stop` or Ctrl-D ends it.

The server is http://127.0.0.1:RASA_PORT; the token is RASA_AUTH_TOKEN, else the one `make run` saved in
VAR_DIR/rasa_auth_token (both through bot.config).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import urllib.error
import urllib.request
import uuid

from bot import config

TOKEN_FILE = "rasa_auth_token"  # in VAR_DIR, written by scripts/run.sh


def auth_token() -> str | None:
    """RASA_AUTH_TOKEN, else the token `make run` generated."""
    token = config.rasa_auth_token()
    if token:
        return token
    path = config.var_dir() / TOKEN_FILE
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def server_problem(server_url: str, token: str | None) -> str | None:
    """Why the console cannot talk to the server (None when the REST channel answers with this token)."""
    if not token:
        return (f"no token: set RASA_AUTH_TOKEN or start the bot with `make run` (it saves one in "
                f"{config.var_dir() / TOKEN_FILE})")
    request = urllib.request.Request(
        f"{server_url}/webhooks/rest/webhook?token={token}", data=b"{}", method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5):
            return None
    except urllib.error.HTTPError as error:
        if error.code == 400:  # the token was accepted; the empty request was refused, as it should be
            return None
        if error.code in (401, 403):
            return f"the bot at {server_url} refused the token ({error.code}); is RASA_AUTH_TOKEN the one it runs with?"
        return f"the bot at {server_url} answered {error.code}"
    except OSError:
        return f"no bot answers at {server_url}: start it with `make run` (in another terminal), then `make shell`"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=f"http://127.0.0.1:{config.rasa_port()}", help="the running Rasa server")
    parser.add_argument("--conversation-id", default=None, help="continue this conversation (default: a new one)")
    parser.add_argument("--no-stream", action="store_true", help="wait for all replies of a message (no ?stream=true)")
    args = parser.parse_args(argv)

    server_url = args.server.rstrip("/")
    token = auth_token()
    problem = server_problem(server_url, token)
    if problem:
        print(f"shell: {problem}", file=sys.stderr)
        return 1
    conversation = args.conversation_id or f"shell-{uuid.uuid4().hex}"
    print(f"Conversation {conversation} with {server_url} (REST channel). /stop ends it.", flush=True)

    from rasa.core.channels.console import record_messages

    try:
        asyncio.run(record_messages(
            sender_id=conversation, server_url=server_url, auth_token=token or "",
            use_response_stream=not args.no_stream,
        ))
    except KeyboardInterrupt:
        pass
    except Exception as error:  # aiohttp's errors (e.g. the server stopped): one line, not a traceback
        print(f"shell: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
