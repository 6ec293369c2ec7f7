"""RQ settings for judge workers: `rq worker -c watchdog.escalation.worker_settings watchdog`.

(`workers/settings.py` at the top of the repository re-exports this, for `rq worker -c
workers.settings watchdog` from a checkout.) Reading it:
* points the worker at the same Redis as the hooks: `WATCHDOG_REDIS_URL`, else the per-user
  embedded server (started here if it is not running);
* makes JSON the default serializer of this worker process: jobs carry agent data, so they are
  JSON, never pickle, and RQ's CLI would otherwise need `-S json` on every command line;
* imports the job module, and with it litellm (about 4 s), once, in the worker's main process,
  and warms it: RQ forks a work horse per job, and a horse inherits what the parent loaded but
  not what it loads itself. litellm loads its tokenizer and about 550 modules on first USE, not
  import (measured: about 1.1 s per job in a cold horse, 20-50 ms warm), so the parent makes one
  cost estimate and one completion per API flavour against an in-process fake judge on
  loopback before forking anything. No network is touched.
"""

from __future__ import annotations

import rq.serializers

from watchdog import config
from watchdog.escalation import queue as _queue

rq.serializers.DefaultSerializer = rq.serializers.JSONSerializer  # type: ignore[misc,assignment]

_settings = config.load()
REDIS_URL = _queue.redis_url(_settings)
QUEUES = [_settings.queue]

import watchdog.escalation.jobs  # noqa: E402,F401  (preload litellm before forking)
from watchdog.escalation.verdicts import report_caps  # noqa: E402
from watchdog.escalation.warmup import warm_up  # noqa: E402

warm_up(_settings)
report_caps(_settings)  # a cap below one call's worst case: one line on stderr per problem
