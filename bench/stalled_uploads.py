"""Slow clients against the deployment's front: nginx (deploy/nginx.conf) before compose's gunicorn.

    .venv/bin/python bench/stalled_uploads.py [--stalled 64] [--requests 500] [--uploads 12] [--json out.json]

What it starts (tests/site/web_stack.py; all stopped at the end): a private Redis as the
broker (no worker: the uploads are stored and queued, as in production, and the web process
never loads TensorFlow), a SQLite database in a temp dir, compose's web command (setup_site,
collectstatic, gunicorn 2 workers x 8 threads) and nginx with deploy/nginx.conf.

Then:
  1. baseline: --requests GET /api/v1/labels, one at a time, through nginx: p50/p99/max;
  2. the same while --stalled uploads are held open through nginx (each announces a 10 MiB
     body, sends a few bytes, then a byte every 4 s so that not even the body timeout ends
     it): p50/p99/max, and how many of the stalled connections nginx still holds;
  3. for comparison, --stalled uploads straight to gunicorn and 20 GETs with a 3 s timeout:
     how many time out;
  4. --uploads concurrent uploads of the largest body the API takes (a PNG just under
     ml.preprocess.MAX_BYTES, 1.5 MiB, as base64 JSON, ~2 MB), three rounds, through nginx: the statuses, and the total RSS of the
     gunicorn master and workers sampled every 20 ms (peak, and before/after).
The exit status is 1 if the p99 under stalled uploads is 500 ms or more, any GET through nginx
failed, or the peak RSS is 1 GB or more.
"""

import argparse
import base64
import io
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from ml.preprocess import MAX_BYTES as MAX_IMAGE_BYTES  # noqa: E402
from tests.site.private_services import PrivateRedis  # noqa: E402
from tests.site.web_stack import StalledUploads, WebStack, timed_get  # noqa: E402
from tests.site.workers import production_env  # noqa: E402


def largest_png() -> bytes:
    """Noise, so that it barely compresses: the biggest square PNG under the API's byte limit."""
    rng = random.Random(7)
    side = int((MAX_IMAGE_BYTES / 3) ** 0.5) - 8  # RGB noise compresses to a little over 3 bytes a pixel
    image = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    data = buffer.getvalue()
    assert len(data) <= MAX_IMAGE_BYTES, len(data)
    return data


def percentiles(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    return {
        "n": len(ordered),
        "p50_ms": round(1000 * statistics.median(ordered), 1),
        "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1),
        "max_ms": round(1000 * ordered[-1], 1),
    }


def get_series(url: str, count: int, timeout: float) -> tuple[list[int | None], list[float]]:
    results = [timed_get(url, timeout) for _ in range(count)]
    return [status for status, _ in results], [seconds for _, seconds in results]


def post_json(url: str, body: bytes) -> int | str:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError as exc:
        return type(exc).__name__


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stalled", type=int, default=64)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--uploads", type=int, default=12)
    parser.add_argument("--json", help="write the report here too")
    args = parser.parse_args()

    report: dict = {"loadavg_start": open("/proc/loadavg").read().split()[:3]}
    workdir = Path(tempfile.mkdtemp(prefix="emnist-stalled-"))
    redis = PrivateRedis()
    env = production_env(
        DATABASE_URL=f"sqlite:///{workdir / 'db.sqlite3'}",
        CELERY_BROKER_URL=redis.url,
        DATA_DIR=str(workdir / "data"),
        STATIC_ROOT=str(workdir / "static"),
        THROTTLE_WRITE_CLIENT="off",
        THROTTLE_WRITE_IP="off",
        NUM_PROXIES="1",
        SUBMISSION_WAIT_SECONDS="0",
    )
    env.pop("CACHE_URL", None)  # the cache is the private Redis (the broker's), not the caller's
    try:
        with WebStack(workdir / "stack", env) as stack:
            labels = stack.proxy_url + "/api/v1/labels"
            get_series(labels, 20, 5)  # warm-up: every gunicorn worker imports the API once

            statuses, seconds = get_series(labels, args.requests, 5)
            report["baseline"] = {**percentiles(seconds), "failed": sum(s != 200 for s in statuses)}

            with StalledUploads(stack.proxy_port, args.stalled) as stalled:
                time.sleep(1)
                statuses, seconds = get_series(labels, args.requests, 5)
                held = stalled.still_open()
            report["through_nginx_with_stalled_uploads"] = {
                **percentiles(seconds),
                "stalled": args.stalled,
                "stalled_still_open_at_the_end": held,
                "failed": sum(s != 200 for s in statuses),
            }

            with StalledUploads(stack.web_port, args.stalled):
                time.sleep(1)
                statuses, seconds = get_series(stack.web_url + "/api/v1/labels", 20, 3)
            report["straight_to_gunicorn_with_stalled_uploads"] = {
                "stalled": args.stalled,
                "requests": len(statuses),
                "timed_out": sum(s is None for s in statuses),
            }

            body = json.dumps({"image_base64": base64.b64encode(largest_png()).decode(), "source": "upload"}).encode()
            samples, stop = [], threading.Event()

            def sample():
                while not stop.is_set():
                    samples.append(stack.web_rss_bytes())
                    time.sleep(0.02)

            before = stack.web_rss_bytes()
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            statuses = []
            for _ in range(3):
                results: list = [None] * args.uploads

                def upload(i: int, results: list = results) -> None:
                    results[i] = post_json(stack.proxy_url + "/api/v1/submissions", body)

                threads = [threading.Thread(target=upload, args=(i,)) for i in range(args.uploads)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                statuses += results
            stop.set()
            sampler.join()
            report["max_size_uploads"] = {
                "concurrent": args.uploads,
                "rounds": 3,
                "body_bytes": len(body),
                "statuses": {str(s): statuses.count(s) for s in set(statuses)},
                "web_rss_mib_before": round(before / 2**20),
                "web_rss_mib_peak": round(max(samples) / 2**20),
                "web_rss_mib_after": round(stack.web_rss_bytes() / 2**20),
            }
    finally:
        redis.stop()
    report["loadavg_end"] = open("/proc/loadavg").read().split()[:3]

    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    stalled = report["through_nginx_with_stalled_uploads"]
    ok = (
        stalled["p99_ms"] < 500
        and stalled["failed"] == 0
        and report["baseline"]["failed"] == 0
        and report["max_size_uploads"]["web_rss_mib_peak"] < 1024
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
