"""RQ worker settings for `rq worker -c workers.settings watchdog` (run from the repo root).

Everything lives in `watchdog.escalation.worker_settings`; this file exists so the command
works from a checkout as RQ users expect. See that module's docstring and the README.
"""

from watchdog.escalation.worker_settings import *  # noqa: F403
from watchdog.escalation.worker_settings import QUEUES, REDIS_URL  # noqa: F401
