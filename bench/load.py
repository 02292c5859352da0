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
"""

import argparse
import http.client
import io
import json
import os
import random
import secrets
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


def compose_command(service: str) -> list[str]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return list(compose["services"][service]["command"])


class Processes:
    """Everything the benchmark starts, stopped in reverse order by stop()."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "wb")
        process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class CpuMeter:
    """CPU seconds spent by each component during a phase, so that the cost per request can
    be read even on a busy machine. PostgreSQL: the backends serving the benchmark database."""

    def __init__(self, groups):
        self.groups = groups  # name -> callable returning pids

    def snapshot(self) -> dict:
        return {name: {pid: cpu_seconds(pid) for pid in pids()} for name, pids in self.groups.items()}

    @staticmethod
    def delta(before: dict, after: dict) -> dict:
        out = {}
        for name, pids in after.items():
            out[name] = round(sum(t - before.get(name, {}).get(pid, 0.0) for pid, t in pids.items()), 2)
        return out


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --------------------------------------------------------------------------- requests


def canvas_png(rng: random.Random) -> bytes:
    """A drawing as the page sends it: 280x280, transparent, black ink in alpha."""
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(1, 3)):
        points = [(rng.randint(50, 230), rng.randint(40, 240)) for _ in range(rng.randint(2, 5))]
        draw.line(points, fill=(0, 0, 0, 255), width=rng.randint(14, 24), joint="curve")
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
    """

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str = ""
    ) -> tuple[int, bytes, float]:
        unsafe = method not in ("GET", "HEAD", "OPTIONS")
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
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the web and worker processes")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    import psycopg2

    # `timeout` or Ctrl-C: still run the finally block that stops what was started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    workdir = Path(tempfile.mkdtemp(prefix="emnist-bench-"))
    procs = Processes(workdir)
    admin_dsn = args.pg.rstrip("/") + "/postgres"
    db_url = args.pg.rstrip("/") + "/" + args.db

    def admin_sql(sql: str) -> None:
        conn = psycopg2.connect(admin_dsn)
        conn.autocommit = True
        try:
            conn.cursor().execute(sql)
        finally:
            conn.close()

    report: dict = {"machine": {"cpus": os.cpu_count(), "loadavg_start": loadavg()}}
    ok = True
    try:
        admin_sql(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
        admin_sql(f'CREATE DATABASE "{args.db}"')

        redis_port, web_port = free_port(), free_port()
        procs.start(
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
            DATABASE_URL=db_url,
            CELERY_BROKER_URL=f"redis://127.0.0.1:{redis_port}/0",
            DATA_DIR=str(workdir / "data"),
            MODEL_DIR=str(workdir / "data" / "models"),
            STATIC_ROOT=str(workdir / "static"),
            SUBMISSION_WAIT_SECONDS="3",
            # h5a's per-client and per-IP write throttles: off, this measures speed.
            THROTTLE_WRITE_CLIENT="off",
            THROTTLE_WRITE_IP="off",
            TF_CPP_MIN_LOG_LEVEL="2",
        )
        for item in args.env:
            name, _, value = item.partition("=")
            env[name] = value

        shell, flag, script = compose_command("web")
        script = script.replace("0.0.0.0:8000", f"127.0.0.1:{web_port}")
        # Its own gunicorn control socket, not the one compose's path would share with others.
        script = script.replace(
            "/tmp/gunicorn-web.ctl", os.path.join(tempfile.mkdtemp(prefix="emnist-bench-"), "gunicorn.ctl")
        )
        if args.web_command:
            script = (
                script[: script.index("exec gunicorn")] + "exec " + args.web_command.replace("{port}", str(web_port))
            )
        report["web_command"] = script
        web = procs.start("web", [shell, flag, script], env)
        worker_argv = compose_command("worker") + args.worker_args.split()
        report["worker_command"] = " ".join(worker_argv)
        worker = procs.start("worker", worker_argv, env)

        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/api/v1/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if web.poll() is not None or worker.poll() is not None or time.monotonic() > deadline:
                print(procs.log_tail("web"), procs.log_tail("worker"), sep="\n----\n")
                raise SystemExit("the web or worker process did not come up")
            time.sleep(0.5)

        def pg_backends() -> list[int]:
            conn = psycopg2.connect(admin_dsn)
            try:
                cur = conn.cursor()
                cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [args.db])
                return [row[0] for row in cur.fetchall()]
            finally:
                conn.close()

        redis_pid = procs.started[0][1].pid
        cpu = CpuMeter(
            {
                "web": lambda: [web.pid, *children(web.pid)],
                "worker": lambda: [worker.pid, *children(worker.pid)],
                "redis": lambda: [redis_pid],
                "postgres": pg_backends,
            }
        )

        rng = random.Random(0)
        bodies = [multipart(canvas_png(rng)) for _ in range(64)]
        content_type = f"multipart/form-data; boundary={BOUNDARY}"
        accepted_ids: list[str] = []

        def post(client: Client, i: int):
            status, body, elapsed = client.request("POST", "/api/v1/submissions", bodies[i % len(bodies)], content_type)
            if status in (201, 202):
                accepted_ids.append(json.loads(body)["id"])  # list.append is atomic
            return status, body, elapsed

        # Warm-up: every worker child loads TensorFlow and the model on its first task, and
        # every gunicorn worker imports the API on its first request.
        warm = run_phase([Client(web_port) for _ in range(4)], 200, post)
        report["warmup"] = {k: v for k, v in warm.items() if k != "_results"}
        if set(warm["status_codes"]) - {"201", "202"}:
            print(procs.log_tail("web"), procs.log_tail("worker"), sep="\n----\n")
            raise SystemExit(f"warm-up failed: {warm['status_codes']}")

        c1 = run_phase([Client(web_port)], args.c1_requests, post, cpu=cpu)
        report["predict_c1"] = {k: v for k, v in c1.items() if k != "_results"}
        print("predict c=1", json.dumps(report["predict_c1"]), flush=True)

        web_pid, worker_pid = web.pid, worker.pid
        samples = []

        def sample(done: int) -> None:
            if done % 1000 == 0:
                samples.append(
                    {
                        "predictions": done,
                        "web_rss_mib": [round(rss_mib(p) or 0, 1) for p in children(web_pid)],
                        "worker_parent_rss_mib": round(rss_mib(worker_pid) or 0, 1),
                        "worker_child_rss_mib": [round(rss_mib(p) or 0, 1) for p in children(worker_pid)],
                        "loadavg": loadavg(),
                    }
                )

        sample(0)
        cn = run_phase([Client(web_port) for _ in range(args.concurrency)], args.predictions, post, sample, cpu=cpu)
        report[f"predict_c{args.concurrency}"] = {k: v for k, v in cn.items() if k != "_results"}
        report["rss_samples"] = samples
        print(f"predict c={args.concurrency}", json.dumps(report[f"predict_c{args.concurrency}"]), flush=True)

        # Reads: each client reads submissions its own session created (others' are 404).
        read_clients = [Client(web_port) for _ in range(args.concurrency)]
        own: list[list[str]] = []
        for client in read_clients:
            ids = []
            for k in range(8):
                status, body, _ = client.request("POST", "/api/v1/submissions", bodies[k], content_type)
                if status in (201, 202):
                    ids.append(json.loads(body)["id"])
                    accepted_ids.append(ids[-1])
            own.append(ids)
        by_client = {id(c): ids for c, ids in zip(read_clients, own)}

        def read(client: Client, i: int):
            ids = by_client[id(client)]
            return client.request("GET", f"/api/v1/submissions/{ids[i % len(ids)]}")

        reads = run_phase(read_clients, args.reads, read, cpu=cpu)
        report[f"read_c{args.concurrency}"] = {k: v for k, v in reads.items() if k != "_results"}
        print(f"read c={args.concurrency}", json.dumps(report[f"read_c{args.concurrency}"]), flush=True)

        # Every accepted request is one row, and every row has a prediction.
        conn = psycopg2.connect(db_url)
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
        finally:
            conn.close()
        errors = sum(v for k, v in cn["status_codes"].items() if k not in ("201", "202"))
        errors += sum(v for k, v in c1["status_codes"].items() if k not in ("201", "202"))
        read_errors = sum(v for k, v in reads["status_codes"].items() if k != "200")
        report["check"] = {
            "accepted_requests": len(accepted_ids),
            "distinct_accepted_ids": len(set(accepted_ids)),
            "rows": rows,
            "distinct_rows": distinct,
            "predicted_rows": predicted,
            "post_errors": errors,
            "read_errors": read_errors,
        }
        ok = rows == len(set(accepted_ids)) == len(accepted_ids) == predicted and errors == 0 and read_errors == 0
        report["check"]["ok"] = ok
        print("check", json.dumps(report["check"]), flush=True)
        print("rss", json.dumps(samples), flush=True)
    finally:
        procs.stop()
        if not args.keep_db:
            try:
                admin_sql(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
            except Exception as exc:  # noqa: BLE001
                print(f"could not drop {args.db}: {exc}")
        report["machine"]["loadavg_end"] = loadavg()
        report["logs"] = str(workdir)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
