"""`watchdog worker [-n N] [--burst]`: start N RQ judge workers for this machine's queue.

Each worker is a plain `rq worker` process (same Redis, same queue, its own name), so RQ's own
tools (`rq info`, the failed job registry, `rq requeue`) see them as usual. Workers on other
machines join by running the same command with the same `WATCHDOG_REDIS_URL`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from typing import Any

from watchdog import config

SETTINGS_MODULE = "watchdog.escalation.worker_settings"


def command(settings: config.Settings, name: str, burst: bool) -> list[str]:
    rq_exe = shutil.which("rq", path=os.path.dirname(sys.executable)) or shutil.which("rq")
    base = [rq_exe] if rq_exe else [sys.executable, "-m", "rq.cli"]
    cmd = base + ["worker", "-c", SETTINGS_MODULE, "--name", name, "--with-scheduler"]
    if burst:
        cmd.append("--burst")
    return cmd + [settings.queue]


def run(count: int, burst: bool, verbose: bool = False) -> int:
    settings = config.load()
    host = socket.gethostname().split(".")[0]
    procs: list[subprocess.Popen[Any]] = []
    for i in range(max(1, count)):
        name = f"watchdog-{host}-{os.getpid()}-{i}"
        cmd = command(settings, name, burst) + ([] if verbose else ["--quiet"])
        procs.append(subprocess.Popen(cmd))

    def forward(signum: int, _frame: Any) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    codes = [p.wait() for p in procs]
    return max(codes) if codes else 0
