"""gunicorn reads this file from the working directory on start (compose's web command and the
tests run it from the repository root). Everything else is on the command line in
docker-compose.yml.

Prometheus in multiprocess mode (recognition/metrics.py): with PROMETHEUS_MULTIPROC_DIR set,
each worker writes its request latencies to files there, and a scrape adds them up. Files of a
previous run would be added too, so the folder is emptied before the first worker starts; a
worker that exits (--max-requests recycling) is marked dead so its live gauges stop counting.
"""

import os
import shutil


def on_starting(server):
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder, exist_ok=True)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
