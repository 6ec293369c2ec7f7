"""`watchdog redis url|status|stop`: which Redis the hooks and workers share, and the embedded
server's lifecycle (it is started on first use and otherwise keeps running).

`rq info` reads 127.0.0.1:6379 unless told otherwise, which is not the embedded server:
`rq info -u "$(watchdog redis url)"` shows the watchdog's queues, workers and failed jobs.
"""

from __future__ import annotations

import sys

from watchdog import config
from watchdog.errors import QueueUnavailable


def run(action: str) -> int:
    from watchdog.escalation import queue

    settings = config.load()
    embedded = not settings.redis_url
    if action == "stop":
        if not embedded:
            sys.stderr.write("watchdog: WATCHDOG_REDIS_URL names a shared Redis; stop it with "
                             "its own tools, not here.\n")
            return 1
        pid = queue.stop_embedded(settings.state_dir)
        print(f"stopped the embedded Redis (pid {pid})" if pid else
              "the embedded Redis is not running")
        return 0
    url = settings.redis_url or f"unix://{queue.embedded_socket(settings.state_dir)}"
    if action == "url":
        print(url)
        return 0
    where = "shared (WATCHDOG_REDIS_URL)" if not embedded else "embedded"
    if embedded and queue.embedded_pid(settings.state_dir) is None:
        print(f"{where}: {url}: not running (it starts on the first escalation or worker)")
        return 1
    try:
        conn = queue.connect(settings)
        workers = queue.live_workers(conn, settings.queue)
        conn.close()
    except QueueUnavailable as exc:
        print(f"{where}: {exc}")
        return 1
    pid = queue.embedded_pid(settings.state_dir) if embedded else None
    print(f"{where}: {url}" + (f" (pid {pid})" if pid else "") +
          f": answering; {workers} live worker(s) on queue '{settings.queue}'")
    return 0
