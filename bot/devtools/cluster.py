"""Several Rasa servers behind nginx, over PostgreSQL and Redis: `make run-cluster N=3`, tests and bench.

Parts (each a process of ours, on 127.0.0.1):
- PostgreSQL (tracker store) and Redis (conversation locks): the ones given (`--tracker-db-url`,
  `--redis-url`, else TRACKER_DB_URL / REDIS_URL when they name PostgreSQL / Redis), or private ones started
  here (initdb into the work directory with Debian's binaries, run as the `postgres` user; redis-server
  without persistence), so fault tests can stop and restart them without touching anyone else's;
- one action server; N Rasa servers (REST + socket.io + SMS, HTTP API with the token);
- nginx from deploy/nginx/cluster.conf.template: least connections for REST, sticky for socket.io.

Used as a library by tests/cluster/ and scripts/bench_cluster.py (faults: kill_rasa, restart_postgres,
stop_redis, stop_actions ...), and as a command that keeps the cluster running and restarts a part that dies:
    python -m bot.devtools.cluster --servers 3 --port 5005
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bot.devtools.stack import MODEL, ROOT, VENV_BIN, base_env, free_port, http_json, wait_until

NGINX_TEMPLATE = ROOT / "deploy" / "nginx" / "cluster.conf.template"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# the background workers of `make run` (scripts/run.sh parts alerts, outreach): `python -m` arguments
WORKERS = {"alerts": ["bot.alerts", "worker"], "outreach": ["bot.outreach.worker"]}
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def pg_bin() -> Path:
    """The newest Debian PostgreSQL binaries (initdb, pg_ctl)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise FileNotFoundError("PostgreSQL is not installed: apt-get install -y postgresql")
    return found[-1].parent


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _as_postgres(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the `postgres` system user then."""
    if os.geteuid() != 0:
        return args
    return ["runuser", "-u", "postgres", "--", *args]


@dataclass
class PrivatePostgres:
    """A PostgreSQL of our own in `directory`, on `port` (trust auth, loopback only, no fsync)."""

    directory: Path
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = _as_postgres([str(pg_bin() / "pg_ctl"), "-D", str(self.directory / "data"), *args])
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres")
        os.chmod(self.directory, 0o700)
        if not (self.directory / "data" / "PG_VERSION").exists():
            subprocess.run(_as_postgres([str(pg_bin() / "initdb"), "-D", str(self.directory / "data"), "-U", "postgres",
                                         "-A", "trust", "-E", "UTF8", "--no-sync"]),
                           check=True, capture_output=True, timeout=120)
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off "
                   "-c full_page_writes=off -c synchronous_commit=off -c max_connections=200")
        self._ctl("-l", str(self.directory / "server.log"), "-w", "-t", "60", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "stop", check=False)

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class PrivateRedis:
    """A redis-server of our own on `port`, without persistence."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = open(self.directory / "redis.log", "a")
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory), "--protected-mode", "yes"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: port_open(self.port), 20, "redis-server", self.process, self.directory / "redis.log")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)
        self.process = None


@dataclass
class Cluster:
    """N Rasa servers + one action server behind nginx, over PostgreSQL and Redis. A context manager."""

    servers: int = 3
    port: int = 0  # nginx's port; 0: a free one
    tracker_db_url: str | None = None  # None: a private PostgreSQL in the work directory
    redis_url: str | None = None  # None: a private Redis
    workdir: Path | None = None  # None: a temporary directory, removed by stop()
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    env: dict[str, str] = field(default_factory=dict)
    model: Path = MODEL
    workers: tuple[str, ...] = ()  # background workers to run once each: WORKERS names (make run-cluster: all)

    def __post_init__(self) -> None:
        self.keep_workdir = self.workdir is not None
        self.workdir = Path(self.workdir or tempfile.mkdtemp(prefix="clinic-cluster-")).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o711)  # the postgres user (private PostgreSQL) may pass through, not list
        self.port = self.port or free_port()
        self.rasa_ports = [free_port() for _ in range(self.servers)]
        self.action_port = free_port()
        self.processes: dict[str, subprocess.Popen] = {}
        self.postgres: PrivatePostgres | None = None
        self.redis: PrivateRedis | None = None

    # --- addresses -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def server_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.rasa_ports[index]}"

    @property
    def rest_url(self) -> str:
        return f"{self.url}/webhooks/rest/webhook?token={self.token}"

    # --- start and stop ---------------------------------------------------------------------------
    def start(self) -> Cluster:
        if not self.model.exists():
            raise FileNotFoundError(f"No trained model at {self.model}; run `make model` first.")
        if self.tracker_db_url is None:
            self.postgres = PrivatePostgres(self.workdir / "postgres")
            self.postgres.start()
            self.tracker_db_url = self.postgres.url
        if self.redis_url is None:
            self.redis = PrivateRedis(self.workdir / "redis")
            self.redis.start()
            self.redis_url = self.redis.url
        endpoints = (ROOT / "endpoints.yml").read_text().replace(
            "http://127.0.0.1:5055/webhook", f"http://127.0.0.1:{self.action_port}/webhook")
        (self.workdir / "endpoints.yml").write_text(endpoints)
        self.start_actions(wait=False)
        for index in range(self.servers):
            self.start_rasa(index, wait=False)
        self.wait_actions()
        for index in range(self.servers):
            self.wait_rasa(index)
        self.start_nginx()
        for name in self.workers:
            self.start_worker(name)
        return self

    def _spawn(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "a")
        env = base_env({"RASA_AUTH_TOKEN": self.token, "TRACKER_DB_URL": self.tracker_db_url or "",
                        "REDIS_URL": self.redis_url or "", **self.env, **(extra_env or {})})
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes[name] = process
        return process

    def _stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(name, None)
        if process and process.poll() is None:
            os.killpg(process.pid, sig)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def start_actions(self, wait: bool = True) -> None:
        self._spawn("actions", [str(VENV_BIN / "rasa"), "run", "actions", "--actions", "actions",
                                "--port", str(self.action_port)], {"SANIC_HOST": "127.0.0.1"})
        if wait:
            self.wait_actions()

    def wait_actions(self) -> None:
        wait_until(lambda: http_json("GET", f"http://127.0.0.1:{self.action_port}/health", timeout=2)[0] == 200,
                   120, "action server", self.processes["actions"], self.workdir / "actions.log")

    def stop_actions(self) -> None:
        self._stop("actions")

    def start_worker(self, name: str) -> None:
        """One escalation-alert or outreach worker for the whole cluster (they share the databases, so one each)."""
        self._spawn(name, [str(VENV_BIN / "python"), "-m", *WORKERS[name]], {"RASA_SERVER_URL": self.url})

    def start_rasa(self, index: int, wait: bool = True) -> None:
        self._spawn(f"rasa{index}", [
            str(VENV_BIN / "rasa"), "run", "--model", str(self.model), "--port", str(self.rasa_ports[index]),
            "--interface", "127.0.0.1", "--enable-api", "--auth-token", self.token,
            "--endpoints", str(self.workdir / "endpoints.yml"), "--credentials", str(ROOT / "credentials.yml")])
        if wait:
            self.wait_rasa(index)

    def rasa_ready(self, index: int) -> bool:
        status, body = http_json("GET", f"{self.server_url(index)}/status?token={self.token}", timeout=2)
        return status == 200 and isinstance(body, dict) and bool(body.get("model_id"))

    def wait_rasa(self, index: int, timeout_s: float = 300) -> None:
        wait_until(lambda: self.rasa_ready(index), timeout_s, f"rasa server {index}",
                   self.processes[f"rasa{index}"], self.workdir / f"rasa{index}.log")

    def kill_rasa(self, index: int) -> None:
        """SIGKILL: the server dies in the middle of whatever it is doing."""
        self._stop(f"rasa{index}", signal.SIGKILL)

    def write_nginx_config(self) -> Path:
        def servers(indent: str = "        ") -> str:
            return "\n".join(f"{indent}server 127.0.0.1:{port} max_fails=1 fail_timeout=2s;" for port in self.rasa_ports)

        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.workdir / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        text = (NGINX_TEMPLATE.read_text().replace("@PREFIX@", str(self.workdir))
                .replace("@LISTEN@", f"127.0.0.1:{self.port}")
                .replace("@REST_SERVERS@", servers()).replace("@SOCKETIO_SERVERS@", servers()))
        path = self.workdir / "nginx.conf"
        path.write_text(text)
        return path

    def start_nginx(self) -> None:
        config = self.write_nginx_config()
        check = subprocess.run([NGINX, "-t", "-q", "-p", str(self.workdir), "-c", str(config), "-e", "stderr"],
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"nginx refused {config}:\n{check.stderr}")
        self._spawn("nginx", [NGINX, "-p", str(self.workdir), "-c", str(config), "-e", "stderr", "-g", "daemon off;"])
        wait_until(lambda: http_json("GET", f"{self.url}/status?token={self.token}", timeout=2)[0] == 200, 30,
                   "nginx", self.processes["nginx"], self.workdir / "nginx.log")

    def stop(self) -> None:
        for name in [*self.workers, "nginx", *[n for n in self.processes if n.startswith("rasa")], "actions"]:
            self._stop(name)
        if self.redis:
            self.redis.stop()
        if self.postgres:
            self.postgres.stop("immediate")
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Cluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- looking at it ----------------------------------------------------------------------------
    def upstreams_used(self) -> list[str]:
        """The Rasa server (address) of every request nginx passed on, from its access log."""
        log = self.workdir / "nginx-access.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return [line.split()[5] for line in lines if len(line.split()) > 6]

    def supervise(self, interval_s: float = 1.0) -> None:
        """Keep every part running until interrupted: restart one that died, and say so."""
        while True:
            time.sleep(interval_s)
            for name, process in list(self.processes.items()):
                if process.poll() is None:
                    continue
                print(f"{time.strftime('%H:%M:%S')} {name} exited with code {process.returncode}; restarting", flush=True)
                if name == "actions":
                    self.start_actions(wait=False)
                elif name.startswith("rasa"):
                    self.start_rasa(int(name[4:]), wait=False)
                elif name == "nginx":
                    self.start_nginx()
                elif name in WORKERS:
                    self.start_worker(name)


def main(argv: list[str] | None = None) -> int:
    from bot import config

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", type=int, default=3, help="number of Rasa servers (default 3)")
    parser.add_argument("--port", type=int, default=config.rasa_port(), help="nginx's port, where clients connect (RASA_PORT)")
    parser.add_argument("--tracker-db-url", help="PostgreSQL URL (default: TRACKER_DB_URL if PostgreSQL, else a private one)")
    parser.add_argument("--redis-url", help="Redis URL (default: REDIS_URL, else a private Redis)")
    parser.add_argument("--workdir", default=str(config.var_dir() / "cluster"), help="logs, nginx.conf, private databases")
    args = parser.parse_args(argv)
    if not 1 <= args.servers <= 16:
        parser.error("--servers must be 1 to 16")
    configured_db = config.tracker_db_url()
    tracker_db_url = args.tracker_db_url or (configured_db if configured_db.startswith("postgres") else None)
    token = config.rasa_auth_token() or _saved_token(config.var_dir() / "rasa_auth_token")
    cluster = Cluster(servers=args.servers, port=args.port, tracker_db_url=tracker_db_url,
                      redis_url=args.redis_url or config.redis_url(), workdir=Path(args.workdir), token=token,
                      workers=tuple(WORKERS))
    if port_open(args.port):
        parser.error(f"port {args.port} is in use (is `make run` running?); choose another with --port or RASA_PORT")
    print(f"Starting {args.servers} Rasa servers behind nginx (logs in {cluster.workdir}) ...", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        cluster.start()
        print(f"""
  Cluster ready: {args.servers} Rasa servers behind nginx on {cluster.url}
  REST webhook:  POST {cluster.url}/webhooks/rest/webhook?token=<HTTP API token>  {{"sender": "id", "message": "text"}}
  socket.io:     {cluster.url}/socket.io/  (sticky: clinic_route cookie, else client address)
  Tracker store: {_masked(cluster.tracker_db_url or '')}   Locks: {cluster.redis_url}
  Rasa servers:  {', '.join(cluster.server_url(i) for i in range(args.servers))}
  Workers:       {', '.join(cluster.workers)} (one each; logs beside the others)
  nginx config:  {cluster.workdir / 'nginx.conf'} (from deploy/nginx/cluster.conf.template)

  Ctrl-C stops everything.
""", flush=True)
        cluster.supervise()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
    return 0


def _saved_token(path: Path) -> str:
    """The HTTP API token `make run` uses (var/rasa_auth_token, 0600), created when missing."""
    if not path.exists() or not path.read_text().strip():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


def _masked(url: str) -> str:
    from sqlalchemy.engine.url import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable URL)"


if __name__ == "__main__":
    sys.exit(main())
