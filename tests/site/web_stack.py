"""gunicorn, started with docker-compose.yml's web command, behind nginx with deploy/nginx.conf,
both on free loopback ports with their files in a temp dir: for tests/site/test_proxy.py and
bench/stalled_uploads.py. Neither needs root; as root, nginx's workers stay root so that they
can write the temp dir (the compose image runs everything as an unprivileged user).

WebStack and StalledUploads are context managers; what they start is stopped on the way out.
No Django import here: the benchmark uses this without settings.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from tests.site.private_services import free_port

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_CONTROL_SOCKET = "/tmp/gunicorn-web.ctl"


def compose_service(service: str) -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][service]


def web_script(port: int, control_socket: Path) -> list[str]:
    """Compose's web command, bound to 127.0.0.1:port, with its own gunicorn control socket."""
    shell, flag, script = compose_service("web")["command"]
    assert "0.0.0.0:8000" in script and COMPOSE_CONTROL_SOCKET in script, script
    return [
        shell,
        flag,
        script.replace("0.0.0.0:8000", f"127.0.0.1:{port}").replace(COMPOSE_CONTROL_SOCKET, str(control_socket)),
    ]


def nginx_conf(listen_port: int, upstream_port: int) -> str:
    """deploy/nginx.conf, listening on 127.0.0.1:listen_port and proxying to upstream_port."""
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    conf, listens = re.subn(r"listen 8080;", f"listen 127.0.0.1:{listen_port};", conf)
    conf, servers = re.subn(r"server web:8000;", f"server 127.0.0.1:{upstream_port};", conf)
    assert listens == 1 and servers == 1, "deploy/nginx.conf no longer has `listen 8080;` and `server web:8000;`"
    return conf


def status_of(url: str, timeout: float = 5) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_serving(url: str, process: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            status_of(url, timeout=2)
            return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up:\n" + log.read_text(errors="replace")[-3000:])
        time.sleep(0.3)


class WebStack:
    def __init__(self, workdir: Path, env: dict, nginx: str | None = None):
        self.workdir = Path(workdir)
        self.env = env
        self.nginx = nginx or shutil.which("nginx") or "/usr/sbin/nginx"
        self.web_port = free_port()
        self.proxy_port = free_port()
        self.control_socket = self.workdir / "gunicorn.ctl"
        self.processes: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def _start(self, name: str, argv: list[str], **kwargs) -> subprocess.Popen:
        self.logs[name] = self.workdir / f"{name}.log"
        log = open(self.logs[name], "wb")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **kwargs)
        log.close()
        self.processes[name] = process
        return process

    def __enter__(self) -> "WebStack":
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            web = self._start("web", web_script(self.web_port, self.control_socket), cwd=ROOT, env=self.env)
            wait_serving(self.web_url + "/api/v1/labels", web, self.logs["web"])
            prefix = self.workdir / "nginx"
            prefix.mkdir(exist_ok=True)
            (prefix / "nginx.conf").write_text(nginx_conf(self.proxy_port, self.web_port))
            directives = "daemon off; master_process on;" + (" user root;" if os.geteuid() == 0 else "")
            proxy = self._start(
                "proxy",
                [self.nginx, "-p", f"{prefix}/", "-c", str(prefix / "nginx.conf"), "-e", "stderr", "-g", directives],
            )
            wait_serving(self.proxy_url + "/api/v1/labels", proxy, self.logs["proxy"], seconds=30)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def web_pids(self) -> list[int]:
        """The gunicorn master and its workers (the shell exec'd into gunicorn)."""
        master = self.processes["web"].pid
        pids = [master]
        for child in Path(f"/proc/{master}/task/{master}/children").read_text().split():
            pids.append(int(child))
        return pids

    def web_rss_bytes(self) -> int:
        total = 0
        for pid in self.web_pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except FileNotFoundError:
                pass  # a worker recycled between the listing and the read
        return total


class StalledUploads:
    """``count`` connections, each announcing a 10 MiB JSON body and sending a byte every few
    seconds; closed on exit."""

    def __init__(self, port: int, count: int):
        self.port, self.count = port, count
        self.sockets: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)

    def __enter__(self):
        head = (
            "POST /api/v1/submissions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {10 * 1024 * 1024}\r\n\r\n"
        ).encode()
        for _ in range(self.count):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            sock.sendall(head + b'{"image_base64": "')
            self.sockets.append(sock)
        self.thread.start()
        return self

    def _trickle(self):
        while not self.stop.wait(4):
            for sock in self.sockets:
                try:
                    sock.sendall(b"A")
                except OSError:
                    pass

    def still_open(self) -> int:
        """How many the server has not closed (a closed one reads EOF or errors at once)."""
        open_ = 0
        for sock in self.sockets:
            sock.setblocking(False)
            try:
                open_ += sock.recv(1, socket.MSG_PEEK) != b""
            except BlockingIOError:
                open_ += 1
            except OSError:
                pass
            finally:
                sock.setblocking(True)
        return open_

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=10)
        for sock in self.sockets:
            sock.close()


def timed_get(url: str, timeout: float) -> tuple[int | None, float]:
    started = time.perf_counter()
    try:
        status = status_of(url, timeout=timeout)
    except OSError:
        status = None
    return status, time.perf_counter() - started
