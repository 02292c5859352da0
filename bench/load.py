"""Load benchmark of the deployment: gunicorn web + Celery worker on Redis + PostgreSQL.

    flock /tmp/heavy.lock .venv/bin/python bench/load.py [--predictions 10000] [--json out.json]

What it starts (and stops at the end, whatever happens):
  * a private Redis (`redis-server --port <free> --save "" --appendonly no`) as the broker;
  * a fresh database `emnist_bench` on the PostgreSQL at --pg (dropped first, and at the end
    unless --keep-db): never the test databases;
  * the web service with docker-compose.yml's command (setup_site, collectstatic, gunicorn),
    bound to 127.0.0.1:<free port>, DEBUG=0;
  * the worker service with docker-compose.yml's command (prefork, concurrency 2).
Throttling is turned off in those processes (THROTTLE_WRITE_CLIENT=off, THROTTLE_WRITE_IP=off):
this measures speed, not the rate limits.

Then, with anonymous clients that each keep their session cookie and a keep-alive connection:
  1. concurrency 1: --c1-requests POST /api/v1/submissions of a 280x280 canvas PNG
     (multipart, as the page sends it); latency until the 201 that carries the prediction;
  2. concurrency --concurrency: --predictions more such POSTs; predictions/s over the whole
     run and latency percentiles; the RSS of every web and worker process sampled every
     1,000 predictions (growth after warm-up shows up there);
  3. concurrency --concurrency: --reads GET /api/v1/submissions/{id} of those submissions.
Afterwards it checks the database: one row per accepted POST (201 or 202), each predicted.
Every figure is printed with the load average at the time; the exit status is 1 if any
request failed or a row is missing or unpredicted.

Comparisons, in one invocation (hosts differ and a shared host's speed drifts, so the ratios
are the figures that count):

    flock /tmp/heavy.lock .venv/bin/python bench/load.py --compare main --rounds 4 \
        --c1-requests 200 --predictions 3000
    flock /tmp/heavy.lock .venv/bin/python bench/load.py --peer --cookieless   # Flask: requirements-dev
    flock /tmp/heavy.lock .venv/bin/python bench/load.py --compare-workers 2

  * --compare REV: the files of commit REV (git archive into a temp folder, run on this
    .venv with its own docker-compose.yml commands) against the working tree;
  * --peer: ../shared/peers/peer_server.py (the earlier projects' shape) against the working
    tree, the same client and the same PNG bytes (it gets --peer-predictions at c=N);
  * --compare-workers N: the working tree with --workers worker services against N of them.
Every target is up at once (its own Redis, database and processes) and warmed; then each
round gives every target the same c=1 and c=N phases in turn, the order reversed every other
round. The summary gives the medians over rounds (c=N predictions/s, c=1 p50, c=N p99, CPU
ms a prediction by component) and each target's ratio to the first, round by round too.
--cookieless: clients that never send a cookie (a script; no session, no CSRF) posting
400-530 px canvas PNGs (a high-density phone canvas), as the peer comparison is specified.
Each c=N phase of a comparison also counts Redis commands and PostgreSQL transactions and
rows per prediction (the capacity model in RESULTS.md is built from them).

--profile DIR (the default run): py-spy (requirements-dev) on every web and worker process
during the c=N phase; DIR gets one collapsed-stack file a process and top.json, the top
frames of each group by inclusive and self share.
"""

import argparse
import http.client
import io
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import yaml
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def compose_command(service: str, root: Path = ROOT) -> list[str]:
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    return list(compose["services"][service]["command"])


class Processes:
    """Everything the benchmark starts, stopped in reverse order by stop()."""

    def __init__(self, workdir: Path, cwd: Path = ROOT):
        self.workdir = workdir
        self.cwd = cwd
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "wb")
        process = subprocess.Popen(
            argv, cwd=self.cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.started.append((name, process))
        return process

    def log_tail(self, name: str, chars: int = 3000) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        for _name, process in reversed(self.started):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for _name, process in reversed(self.started):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, *, system_only: bool = False) -> float:
    """User + system CPU seconds of one process, or its system (kernel) seconds alone; 0 if it
    is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[12]) + (0 if system_only else int(fields[11]))) / CLK_TCK


class CpuMeter:
    """CPU seconds spent by each component during a phase, so that the cost per request can
    be read even on a busy machine. PostgreSQL: the backends serving the benchmark database."""

    def __init__(self, groups):
        self.groups = groups  # name -> callable returning pids

    def snapshot(self) -> dict:
        # A name ending in " (kernel)" counts only the system time of its processes (already
        # inside the group of the same name without it): syscalls, futexes, page faults.
        return {
            name: {pid: cpu_seconds(pid, system_only=name.endswith(" (kernel)")) for pid in pids()}
            for name, pids in self.groups.items()
        }

    @staticmethod
    def delta(before: dict, after: dict) -> dict:
        out = {}
        for name, pids in after.items():
            out[name] = round(sum(t - before.get(name, {}).get(pid, 0.0) for pid, t in pids.items()), 2)
        return out


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --------------------------------------------------------------------------- requests


def canvas_png(rng: random.Random, size: int = 280) -> bytes:
    """A drawing as the page sends it: size x size (280 by default), transparent, black ink in
    alpha. Larger sizes scale the same strokes (a high-density phone canvas is 400-530 px)."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    scale = size / 280
    for _ in range(rng.randint(1, 3)):
        points = [
            (round(rng.randint(50, 230) * scale), round(rng.randint(40, 240) * scale)) for _ in range(rng.randint(2, 5))
        ]
        draw.line(points, fill=(0, 0, 0, 255), width=round(rng.randint(14, 24) * scale), joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


BOUNDARY = "benchboundary7MA4YWxkTrZu0gW"


def multipart(png: bytes) -> bytes:
    strokes = json.dumps([[[140, 40, 0], [140, 240, 120]]])
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="drawing.png"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode()
        + png
        + b"\r\n",
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="strokes"\r\n\r\n{strokes}\r\n'.encode(),
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="source"\r\n\r\ncanvas\r\n'.encode(),
        f"--{BOUNDARY}--\r\n".encode(),
    ]
    return b"".join(parts)


class Client:
    """One anonymous visitor: its own keep-alive connection, session and CSRF cookies.

    A visitor with a session cookie must send the CSRF token on writes (as the page does), so
    before its first write the client opens the page once (untimed) to get the token.

    ``cookieless``: a script's client (curl, requests without a Session) that never sends a
    cookie back; it counts the Set-Cookie headers it was sent (a session each, if the server
    starts one for it).
    """

    def __init__(self, port: int, *, cookieless: bool = False):
        self.port = port
        self.cookieless = cookieless
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies: dict[str, str] = {}
        self.set_cookies = 0

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str = ""
    ) -> tuple[int, bytes, float]:
        unsafe = method not in ("GET", "HEAD", "OPTIONS") and not self.cookieless
        if unsafe and "csrftoken" not in self.cookies:
            self.request("GET", "/")
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        if unsafe:
            headers["X-CSRFToken"] = self.cookies["csrftoken"]
        started = time.perf_counter()
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle keep-alive connection: reconnect once.
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt == 2:
                    raise
                started = time.perf_counter()
        elapsed = time.perf_counter() - started
        for cookie in response.headers.get_all("Set-Cookie") or []:
            self.set_cookies += 1
            if self.cookieless:
                continue
            name, _, rest = cookie.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response.status, data, elapsed


def run_phase(clients: list[Client], total: int, make_request, on_done=None, cpu: CpuMeter | None = None) -> dict:
    """``total`` requests over len(clients) threads; make_request(client, i) -> (status, body, s)."""
    cpu_before = cpu.snapshot() if cpu else None
    client_cpu_before = sum(os.times()[:2])
    lock = threading.Lock()
    counter = {"next": 0}
    results: list[tuple[int, float, bytes]] = []

    def loop(client: Client) -> None:
        while True:
            with lock:
                i = counter["next"]
                if i >= total:
                    return
                counter["next"] += 1
            try:
                status, body, elapsed = make_request(client, i)
            except Exception as exc:  # noqa: BLE001 - a broken connection is an error, counted
                status, body, elapsed = 0, repr(exc).encode(), 0.0
            with lock:
                results.append((status, elapsed, body))
                done = len(results)
            if on_done is not None:
                on_done(done)

    threads = [threading.Thread(target=loop, args=(c,)) for c in clients]
    started = time.perf_counter()
    load_before = loadavg()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    cpu_ms = {}
    if cpu is not None:
        spent = CpuMeter.delta(cpu_before, cpu.snapshot())
        spent["load generator"] = sum(os.times()[:2]) - client_cpu_before
        cpu_ms = {name: round(seconds * 1000 / total, 2) for name, seconds in spent.items()}
    ms = sorted(r[1] * 1000 for r in results)
    codes: dict[int, int] = {}
    for status, _e, _b in results:
        codes[status] = codes.get(status, 0) + 1

    def pct(p: float) -> float:
        return round(ms[min(len(ms) - 1, int(p / 100 * len(ms)))], 1) if ms else float("nan")

    return {
        "requests": total,
        "concurrency": len(clients),
        "seconds": round(wall, 2),
        "per_second": round(total / wall, 1),
        "status_codes": {str(k): v for k, v in sorted(codes.items())},
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "max_ms": round(ms[-1], 1) if ms else None,
        "mean_ms": round(statistics.fmean(ms), 1) if ms else None,
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "cpu_ms_per_request": cpu_ms,
        "_results": results,
    }


# --------------------------------------------------------------------------- main


# --------------------------------------------------------------------------- what is measured


class Stack:
    """One deployment of the site from the source tree at ``root``: its own Redis, a fresh
    database, compose's web command (gunicorn) and ``workers`` copies of compose's worker
    command (each its own Celery instance, as `docker compose up --scale worker=N` runs them).
    Two stacks share nothing but PostgreSQL's server, so both can be up at once and measured
    in turns."""

    path = "/api/v1/submissions"

    def __init__(
        self, label: str, root: Path, args, *, db: str, web_command: str = "", worker_args: str = "", workers: int = 1
    ):
        self.label, self.root, self.args, self.db = label, root, args, db
        self.web_command, self.workers = web_command, workers
        self.worker_args = (args.worker_args + " " + worker_args).split()
        # The folder's name goes into a shell command line: no spaces from the label.
        self.workdir = Path(tempfile.mkdtemp(prefix="emnist-bench-" + re.sub(r"[^\w.-]", "_", label) + "-"))
        self.procs = Processes(self.workdir, cwd=root)
        self.admin_dsn = args.pg.rstrip("/") + "/postgres"
        self.db_url = args.pg.rstrip("/") + "/" + db
        self.port = 0
        self.info: dict = {"root": str(root), "logs": str(self.workdir)}

    def admin_sql(self, sql: str) -> None:
        import psycopg2

        conn = psycopg2.connect(self.admin_dsn)
        conn.autocommit = True
        try:
            conn.cursor().execute(sql)
        finally:
            conn.close()

    def start(self) -> None:
        args = self.args
        self.admin_sql(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
        self.admin_sql(f'CREATE DATABASE "{self.db}"')
        self.redis_port = redis_port = free_port()
        self.port = free_port()
        self.redis = self.procs.start(
            "redis",
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        )
        env = dict(os.environ)
        for key in ("CELERY_TASK_ALWAYS_EAGER", "TEST_DATABASE_URL", "DJANGO_SETTINGS_MODULE"):
            env.pop(key, None)
        env.update(
            PATH=str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
            DEBUG="0",
            SECRET_KEY=secrets.token_urlsafe(50),  # the settings refuse short keys when DEBUG=0
            SECURE_COOKIES="0",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            DATABASE_URL=self.db_url,
            CELERY_BROKER_URL=f"redis://127.0.0.1:{redis_port}/0",
            DATA_DIR=str(self.workdir / "data"),
            MODEL_DIR=str(self.workdir / "data" / "models"),
            STATIC_ROOT=str(self.workdir / "static"),
            SUBMISSION_WAIT_SECONDS="3",
            # h5a's per-client and per-IP write throttles: off, this measures speed.
            THROTTLE_WRITE_CLIENT="off",
            THROTTLE_WRITE_IP="off",
            TF_CPP_MIN_LOG_LEVEL="2",
        )
        for item in args.env:
            name, _, value = item.partition("=")
            env[name] = value

        shell, flag, script = compose_command("web", self.root)
        script = script.replace("0.0.0.0:8000", f"127.0.0.1:{self.port}")
        # Its own gunicorn control socket, not the one compose's path would share with others.
        script = script.replace("/tmp/gunicorn-web.ctl", str(self.workdir / "gunicorn.ctl"))
        if self.web_command:
            script = (
                script[: script.index("exec gunicorn")] + "exec " + self.web_command.replace("{port}", str(self.port))
            )
        self.info["web_command"] = script
        self.web = self.procs.start("web", [shell, flag, script], env)
        self.worker_procs = []
        for n in range(self.workers):
            # The second and later: compose's worker-2 (scale-out), each with its own node name.
            # (An older commit's compose file without worker-2: the worker's, renamed.)
            services = yaml.safe_load((self.root / "docker-compose.yml").read_text())["services"]
            service = "worker-2" if n and "worker-2" in services else "worker"
            argv = compose_command(service, self.root) + self.worker_args
            if n:
                argv = [re.sub(r"^inference\d*@", f"inference{n + 1}@", a) for a in argv]
            self.info.setdefault("worker_commands", []).append(" ".join(argv))
            self.worker_procs.append(self.procs.start(f"worker{n + 1}", argv, env))

    def wait_ready(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v1/health", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            dead = self.web.poll() is not None or any(w.poll() is not None for w in self.worker_procs)
            if dead or time.monotonic() > deadline:
                print(self.procs.log_tail("web"), self.procs.log_tail("worker1"), sep="\n----\n")
                raise SystemExit(f"{self.label}: the web or worker process did not come up")
            time.sleep(0.5)

    def pg_backends(self) -> list[int]:
        import psycopg2

        conn = psycopg2.connect(self.admin_dsn)
        try:
            cur = conn.cursor()
            cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [self.db])
            return [row[0] for row in cur.fetchall()]
        finally:
            conn.close()

    def cpu_meter(self) -> CpuMeter:
        return CpuMeter(
            {
                "web": lambda: [self.web.pid, *children(self.web.pid)],
                "web (kernel)": lambda: [self.web.pid, *children(self.web.pid)],
                "worker": lambda: [p for w in self.worker_procs for p in (w.pid, *children(w.pid))],
                "redis": lambda: [self.redis.pid],
                "postgres": self.pg_backends,
            }
        )

    def counters(self) -> dict:
        """Redis commands by name (INFO commandstats) and PostgreSQL's counters of the benchmark
        database (pg_stat_database: transactions, rows inserted, updated, fetched), so that a
        phase's operations per prediction can be read (the capacity model's figures)."""
        import psycopg2
        import redis

        stats = redis.Redis(port=self.redis_port).info("commandstats")
        out = {f"redis {name.removeprefix('cmdstat_')}": v["calls"] for name, v in stats.items()}
        out["redis (all)"] = sum(v["calls"] for v in stats.values())
        conn = psycopg2.connect(self.admin_dsn)
        try:
            cur = conn.cursor()
            cur.execute("SELECT pg_stat_clear_snapshot()")
            cur.execute(
                "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_fetched "
                "FROM pg_stat_database WHERE datname = %s",
                [self.db],
            )
            names = ("pg transactions", "pg rollbacks", "pg rows inserted", "pg rows updated", "pg rows fetched")
            out.update(zip(names, cur.fetchone()))
        finally:
            conn.close()
        return out

    def check_rows(self, accepted_ids: list[str]) -> dict:
        """Every accepted request is one row, and every row has a prediction."""
        import psycopg2

        conn = psycopg2.connect(self.db_url)
        try:
            cur = conn.cursor()
            for _ in range(60):
                cur.execute("SELECT count(*) FROM recognition_submission WHERE status = 'pending'")
                if cur.fetchone()[0] == 0:
                    break
                conn.commit()
                time.sleep(0.5)
            cur.execute(
                "SELECT count(*), count(*) FILTER (WHERE status = 'predicted' AND predicted_label <> '' "
                "AND jsonb_array_length(top_k) = 5), count(DISTINCT id) FROM recognition_submission"
            )
            rows, predicted, distinct = cur.fetchone()
            cur.execute("SELECT count(*) FROM django_session")
            sessions = cur.fetchone()[0]
        finally:
            conn.close()
        ok = rows == len(set(accepted_ids)) == len(accepted_ids) == predicted
        return {
            "accepted_requests": len(accepted_ids),
            "distinct_accepted_ids": len(set(accepted_ids)),
            "rows": rows,
            "distinct_rows": distinct,
            "predicted_rows": predicted,
            "session_rows": sessions,
            "ok": ok,
        }

    def stop(self) -> None:
        self.procs.stop()
        if not self.args.keep_db:
            try:
                self.admin_sql(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
            except Exception as exc:  # noqa: BLE001
                print(f"could not drop {self.db}: {exc}")


PEER_SERVER = ROOT.parent / "shared" / "peers" / "peer_server.py"


class PeerServer:
    """The earlier projects' server (``../shared/peers/peer_server.py``: Flask, one thread,
    ``model.predict`` per request, nothing stored), on a free port."""

    path = "/predict"

    def __init__(self, label: str, script: Path, pythonpath: str = ""):
        self.label, self.script, self.pythonpath = label, script, pythonpath
        self.workdir = Path(tempfile.mkdtemp(prefix="emnist-bench-peer-"))
        self.procs = Processes(self.workdir, cwd=script.parent)
        self.port = free_port()
        self.info: dict = {"script": str(script), "logs": str(self.workdir)}

    def start(self) -> None:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
        if self.pythonpath:  # Flask from elsewhere (it is in requirements-dev, not the runtime set)
            env["PYTHONPATH"] = self.pythonpath
        self.proc = self.procs.start("peer", [sys.executable, str(self.script), str(self.port)], env)

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                print(self.procs.log_tail("peer"))
                raise SystemExit("the peer server did not come up")
            time.sleep(0.5)

    def cpu_meter(self) -> CpuMeter:
        return CpuMeter({"peer": lambda: [self.proc.pid]})

    def counters(self) -> dict:
        return {}  # no Redis, no database

    def check_rows(self, accepted_ids: list[str]) -> dict:
        return {"accepted_requests": len(accepted_ids), "ok": True}  # it stores nothing

    def stop(self) -> None:
        self.procs.stop()


class Profiler:
    """py-spy attached to every web and worker process (the Celery parent included: it does the
    broker's bookkeeping) during one phase; ``stop`` writes one collapsed-stack file a process
    and returns the top frames of each group."""

    def __init__(self, folder: Path, rate: int = 200):
        self.folder, self.rate = folder, rate
        self.running: list[tuple[str, int, subprocess.Popen, Path]] = []

    def start(self, groups: dict) -> None:
        py_spy = Path(sys.executable).parent / "py-spy"  # requirements-dev's
        if not py_spy.exists():
            py_spy = Path(shutil.which("py-spy") or "py-spy")
        self.folder.mkdir(parents=True, exist_ok=True)
        for group, pids in groups.items():
            for pid in pids:
                out = self.folder / f"{group}-{pid}.txt"
                argv = [str(py_spy), "record", "--pid", str(pid), "--rate", str(self.rate)]
                # --gil: only the thread holding the GIL is sampled, so the shares are of CPU,
                # not of threads waiting on a socket (a BLPOP, a query).
                argv += ["--format", "raw", "--output", str(out), "--nonblocking", "--gil"]
                proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                self.running.append((group, pid, proc, out))

    def stop(self, top: int = 25) -> dict:
        for _g, _p, proc, _o in self.running:
            proc.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        for _g, _p, proc, _o in self.running:
            proc.wait(timeout=60)
        groups: dict[str, list[Path]] = {}
        for group, _pid, _proc, out in self.running:
            if out.exists():
                groups.setdefault(group, []).append(out)
        return {group: top_frames(files, top) for group, files in groups.items()}


def top_frames(files: list[Path], top: int) -> dict:
    """Inclusive and self shares of the samples, by function (file:line dropped), over the
    collapsed stacks py-spy wrote ("frame;frame;frame count" a line)."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for path in files:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = [re.sub(r":\d+\)$", ")", f.strip()) for f in stack.split(";") if f.strip()]
            for frame in set(frames):
                inclusive[frame] = inclusive.get(frame, 0) + n
            if frames:
                own[frames[-1]] = own.get(frames[-1], 0) + n

    def share(table: dict) -> list:
        ranked = sorted(table.items(), key=lambda kv: -kv[1])[:top]
        return [[round(100 * v / total, 1), k] for k, v in ranked]

    return {"samples": total, "inclusive_percent": share(inclusive), "self_percent": share(own)}


def make_bodies(args) -> list[bytes]:
    """The drawings every target is sent, the same bytes for each: 280 px canvases (the
    page's), or with --cookieless the 400-530 px ones of a high-density phone canvas."""
    rng = random.Random(0)
    if args.cookieless:
        return [multipart(canvas_png(rng, rng.randint(400, 530))) for _ in range(64)]
    return [multipart(canvas_png(rng)) for _ in range(64)]


def poster(target, bodies: list[bytes], accepted: list[str]):
    content_type = f"multipart/form-data; boundary={BOUNDARY}"

    def post(client: Client, i: int):
        status, body, elapsed = client.request("POST", target.path, bodies[i % len(bodies)], content_type)
        if status in (201, 202):
            accepted.append(json.loads(body)["id"])  # list.append is atomic
        return status, body, elapsed

    return post


def errors_of(phase: dict, good=("200", "201", "202")) -> int:
    return sum(v for k, v in phase["status_codes"].items() if k not in good)


def public(phase: dict) -> dict:
    return {k: v for k, v in phase.items() if k != "_results"}


# --------------------------------------------------------------------------- one run


def single_run(args, report: dict) -> bool:
    """The default: one stack of the working tree, c=1, c=N with RSS samples, reads, row check."""
    stack = Stack("main", ROOT, args, db=args.db, web_command=args.web_command, workers=args.workers)
    try:
        stack.start()
        stack.wait_ready()
        report.update(stack.info)
        cpu = stack.cpu_meter()
        bodies = make_bodies(args)
        accepted_ids: list[str] = []
        post = poster(stack, bodies, accepted_ids)
        new_client = lambda: Client(stack.port, cookieless=args.cookieless)  # noqa: E731

        # Warm-up: every worker child loads TensorFlow and the model on its first task, and
        # every gunicorn worker imports the API on its first request.
        warm = run_phase([new_client() for _ in range(4)], 200, post)
        report["warmup"] = public(warm)
        if set(warm["status_codes"]) - {"201", "202"}:
            print(stack.procs.log_tail("web"), stack.procs.log_tail("worker1"), sep="\n----\n")
            raise SystemExit(f"warm-up failed: {warm['status_codes']}")

        c1 = run_phase([new_client()], args.c1_requests, post, cpu=cpu)
        report["predict_c1"] = public(c1)
        print("predict c=1", json.dumps(report["predict_c1"]), flush=True)

        web_pid = stack.web.pid
        samples = []

        def sample(done: int) -> None:
            if done % 1000 == 0:
                samples.append(
                    {
                        "predictions": done,
                        "web_rss_mib": [round(rss_mib(p) or 0, 1) for p in children(web_pid)],
                        "worker_parent_rss_mib": [round(rss_mib(w.pid) or 0, 1) for w in stack.worker_procs],
                        "worker_child_rss_mib": [
                            round(rss_mib(p) or 0, 1) for w in stack.worker_procs for p in children(w.pid)
                        ],
                        "loadavg": loadavg(),
                    }
                )

        sample(0)
        clients = [new_client() for _ in range(args.concurrency)]
        profiler = None
        if args.profile:
            profiler = Profiler(Path(args.profile))
            profiler.start(
                {
                    "web": children(web_pid),
                    "worker_parent": [w.pid for w in stack.worker_procs],
                    "worker_child": [p for w in stack.worker_procs for p in children(w.pid)],
                }
            )
        cn = run_phase(clients, args.predictions, post, sample, cpu=cpu)
        if profiler is not None:
            report["profile"] = profiler.stop()
            Path(args.profile, "top.json").write_text(json.dumps(report["profile"], indent=2))
        report[f"predict_c{args.concurrency}"] = public(cn)
        report["rss_samples"] = samples
        print(f"predict c={args.concurrency}", json.dumps(report[f"predict_c{args.concurrency}"]), flush=True)

        # Reads: each client reads submissions it created (others' are 404). A cookieless
        # client is known by its address, so it may read any of them.
        read_clients = [new_client() for _ in range(args.concurrency)]
        own: list[list[str]] = []
        for client in read_clients:
            ids = []
            for k in range(8):
                before = len(accepted_ids)
                post(client, k)
                ids += accepted_ids[before:]
            own.append(ids)
        by_client = {id(c): ids for c, ids in zip(read_clients, own)}

        def read(client: Client, i: int):
            ids = by_client[id(client)]
            return client.request("GET", f"/api/v1/submissions/{ids[i % len(ids)]}")

        reads = {"status_codes": {}}
        if args.reads:  # --reads 0: no read phase
            reads = run_phase(read_clients, args.reads, read, cpu=cpu)
            report[f"read_c{args.concurrency}"] = public(reads)
            print(f"read c={args.concurrency}", json.dumps(report[f"read_c{args.concurrency}"]), flush=True)

        check = stack.check_rows(accepted_ids)
        check["post_errors"] = errors_of(cn) + errors_of(c1)
        check["read_errors"] = errors_of(reads, ("200",))
        check["set_cookie_headers"] = sum(c.set_cookies for c in clients)
        check["ok"] = check["ok"] and check["post_errors"] == 0 and check["read_errors"] == 0
        report["check"] = check
        print("check", json.dumps(check), flush=True)
        print("rss", json.dumps(samples), flush=True)
        return check["ok"]
    finally:
        stack.stop()


# --------------------------------------------------------------------------- A/B


def source_tree(rev: str) -> Path:
    """The files of commit ``rev`` in a temporary folder (git archive: no worktree, no branch);
    it runs on this checkout's .venv."""
    folder = Path(tempfile.mkdtemp(prefix=f"emnist-bench-{rev[:12]}-"))
    archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=ROOT, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def alternate(args, targets: list, report: dict) -> bool:
    """Start every target, warm each, then ``--rounds`` rounds; in each, every target gets the
    same c=1 and c=N phases in turn, the order reversed every other round, so that a slow
    minute of a shared host falls on both. Ratios are of the medians over rounds, against the
    first target."""
    bodies = make_bodies(args)
    accepted = {t.label: [] for t in targets}
    rounds: list[dict] = []
    ok = True
    try:
        for target in targets:
            target.start()
        for target in targets:
            target.wait_ready()
            report.setdefault("targets", {})[target.label] = target.info
            post = poster(target, bodies, accepted[target.label])
            warm = run_phase([Client(target.port, cookieless=args.cookieless) for _ in range(4)], args.warmup, post)
            if set(warm["status_codes"]) - {"200", "201", "202"}:
                print(target.procs.log_tail("web" if isinstance(target, Stack) else "peer"))
                raise SystemExit(f"{target.label}: warm-up failed: {warm['status_codes']}")
        meters = {t.label: t.cpu_meter() for t in targets}
        for r in range(args.rounds):
            order = targets if r % 2 == 0 else list(reversed(targets))
            entry: dict = {}
            for target in order:
                post = poster(target, bodies, accepted[target.label])
                cpu = meters[target.label]
                c1 = run_phase([Client(target.port, cookieless=args.cookieless)], args.c1_requests, post, cpu=cpu)
                n = args.peer_predictions if isinstance(target, PeerServer) else args.predictions
                clients = [Client(target.port, cookieless=args.cookieless) for _ in range(args.concurrency)]
                before = target.counters()
                cn = run_phase(clients, n, post, cpu=cpu)
                time.sleep(1)  # PostgreSQL publishes a backend's counters within a second
                after = target.counters()
                entry[target.label] = {
                    "c1": public(c1),
                    "cn": public(cn),
                    "cn_operations_per_prediction": {k: round((after[k] - before.get(k, 0)) / n, 3) for k in after},
                    "errors": errors_of(c1) + errors_of(cn),
                    "set_cookie_headers": sum(c.set_cookies for c in clients),
                }
                print(
                    f"round {r + 1} {target.label}: c=1 p50 {c1['p50_ms']} ms, c={args.concurrency} "
                    f"{cn['per_second']}/s p99 {cn['p99_ms']} ms, CPU ms/prediction {cn['cpu_ms_per_request']}, "
                    f"errors {entry[target.label]['errors']}, load {cn['loadavg_before']} -> {cn['loadavg_after']}",
                    flush=True,
                )
            rounds.append(entry)
        for target in targets:
            check = target.check_rows(accepted[target.label])
            check["errors"] = sum(e[target.label]["errors"] for e in rounds)
            check["ok"] = check["ok"] and check["errors"] == 0
            report.setdefault("check", {})[target.label] = check
            ok = ok and check["ok"]
            print("check", target.label, json.dumps(check), flush=True)
    finally:
        for target in reversed(targets):
            target.stop()
    report["rounds"] = rounds
    report["summary"] = summarise(rounds, [t.label for t in targets])
    print(summary_table(report["summary"], args.concurrency), flush=True)
    return ok


def summarise(rounds: list[dict], labels: list[str]) -> dict:
    """Medians over rounds of each figure, and each target's ratio to the first target's."""

    def med(label: str, pick) -> float:
        return round(statistics.median(pick(e[label]) for e in rounds), 2)

    out: dict = {}
    for label in labels:
        components = sorted({k for e in rounds for k in e[label]["cn"]["cpu_ms_per_request"]})
        cpu = {k: med(label, lambda x, k=k: x["cn"]["cpu_ms_per_request"].get(k, 0.0)) for k in components}
        server = [k for k in components if k != "load generator" and not k.endswith(" (kernel)")]
        out[label] = {
            "cn_per_second": med(label, lambda x: x["cn"]["per_second"]),
            "c1_p50_ms": med(label, lambda x: x["c1"]["p50_ms"]),
            "cn_p99_ms": med(label, lambda x: x["cn"]["p99_ms"]),
            "cn_cpu_ms": cpu,
            "cn_server_cpu_ms": round(sum(cpu[k] for k in server), 2),
            "errors": sum(e[label]["errors"] for e in rounds),
            "per_round_cn_per_second": [e[label]["cn"]["per_second"] for e in rounds],
            "cn_operations_per_prediction": {
                k: med(label, lambda x, k=k: x["cn_operations_per_prediction"].get(k, 0.0))
                for k in rounds[0][label]["cn_operations_per_prediction"]
            },
        }
    base = out[labels[0]]
    for label in labels[1:]:
        this = out[label]
        out[label]["ratio_to_" + labels[0]] = {
            "cn_per_second": round(this["cn_per_second"] / base["cn_per_second"], 2),
            "c1_p50_ms": round(this["c1_p50_ms"] / base["c1_p50_ms"], 2),
            "cn_p99_ms": round(this["cn_p99_ms"] / base["cn_p99_ms"], 2),
            "cn_server_cpu_ms": round(this["cn_server_cpu_ms"] / base["cn_server_cpu_ms"], 2),
            # Round by round: the same minutes for both, the figure that a shared host keeps.
            "per_round_cn_per_second": [
                round(e[label]["cn"]["per_second"] / e[labels[0]]["cn"]["per_second"], 2) for e in rounds
            ],
        }
    return out


def summary_table(summary: dict, concurrency: int) -> str:
    lines = [
        f"| target | c={concurrency} predictions/s | c=1 p50 ms | c={concurrency} p99 ms "
        f"| server CPU ms/prediction at c={concurrency} (by component) | errors | ratio to the first |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, s in summary.items():
        ratio = next((v for k, v in s.items() if k.startswith("ratio_to_")), None)
        lines.append(
            f"| {label} | {s['cn_per_second']} | {s['c1_p50_ms']} | {s['cn_p99_ms']} | {s['cn_server_cpu_ms']} "
            f"({', '.join(f'{k} {v}' for k, v in s['cn_cpu_ms'].items())}) | {s['errors']} | "
            + (json.dumps(ratio) if ratio else "-")
            + " |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--pg", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server (no database name)"
    )
    parser.add_argument("--db", default="emnist_bench")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--c1-requests", type=int, default=500)
    parser.add_argument(
        "--predictions", type=int, default=10000, help="POSTs at --concurrency (RSS sampled every 1000)"
    )
    parser.add_argument("--reads", type=int, default=5000)
    parser.add_argument("--web-command", default="", help="override the gunicorn part of compose's web command")
    parser.add_argument("--worker-args", default="", help="extra arguments appended to compose's worker command")
    parser.add_argument(
        "--b-worker-args", default="", help="--compare: more worker arguments for the working tree only"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="worker services: compose's worker, then worker-2 (scale-out)"
    )
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the web and worker processes")
    parser.add_argument(
        "--cookieless", action="store_true", help="clients that never send a cookie; 400-530 px canvas PNGs"
    )
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--compare", metavar="REV", help="A/B: commit REV against the working tree, in turns")
    modes.add_argument("--peer", action="store_true", help="side by side with ../shared/peers/peer_server.py")
    modes.add_argument(
        "--compare-workers", type=int, metavar="N", help="the working tree with --workers worker services against N"
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL|WEB COMMAND|WORKER ARGS",
        help="--compare: one more target, the working tree with this gunicorn command and worker arguments",
    )
    parser.add_argument("--rounds", type=int, default=3, help="A/B and side-by-side rounds")
    parser.add_argument("--warmup", type=int, default=200, help="A/B: warm-up requests a target")
    parser.add_argument(
        "--peer-pythonpath", default="", help="a folder for the peer's PYTHONPATH (Flask is in requirements-dev)"
    )
    parser.add_argument("--peer-predictions", type=int, default=300, help="the peer's c=N requests a round")
    parser.add_argument("--profile", metavar="DIR", help="py-spy on the web and worker processes during c=N")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    # `timeout` or Ctrl-C: still run the finally blocks that stop what was started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    cpu_model = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?"
    )
    report: dict = {
        "machine": {"cpus": os.cpu_count(), "cpu_model": cpu_model, "started": started, "loadavg_start": loadavg()},
        "argv": sys.argv[1:],
    }
    print(f"{started}, {cpu_model} x {os.cpu_count()}, load average {loadavg()}", flush=True)
    ok = False
    try:
        if args.compare:
            rev = subprocess.run(
                ["git", "rev-parse", args.compare], cwd=ROOT, check=True, capture_output=True, text=True
            ).stdout.strip()
            report["compare"] = rev
            old = Stack(f"{args.compare}", source_tree(rev), args, db=args.db + "_a", workers=args.workers)
            new = Stack(
                "working tree",
                ROOT,
                args,
                db=args.db + "_b",
                web_command=args.web_command,
                worker_args=args.b_worker_args,
                workers=args.workers,
            )
            variants = [
                Stack(
                    label,
                    ROOT,
                    args,
                    db=f"{args.db}_v{n}",
                    web_command=web.strip(),
                    worker_args=worker.strip(),
                    workers=args.workers,
                )
                for n, (label, web, worker) in enumerate(v.split("|") for v in args.variant)
            ]
            ok = alternate(args, [old, new, *variants], report)
        elif args.peer:
            new = Stack("site", ROOT, args, db=args.db, web_command=args.web_command, workers=args.workers)
            ok = alternate(args, [PeerServer("peer", PEER_SERVER, args.peer_pythonpath), new], report)
        elif args.compare_workers:
            one = Stack(f"{args.workers} worker", ROOT, args, db=args.db + "_a", workers=args.workers)
            more = Stack(f"{args.compare_workers} workers", ROOT, args, db=args.db + "_b", workers=args.compare_workers)
            ok = alternate(args, [one, more], report)
        else:
            ok = single_run(args, report)
    finally:
        report["machine"]["loadavg_end"] = loadavg()
        report["machine"]["ended"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        print(f"ended {report['machine']['ended']}, load average {loadavg()}", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
