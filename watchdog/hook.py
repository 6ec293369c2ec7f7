"""The command hook: one event on stdin, the harness's answer on stdout, its exit code.

Everything between is `pipeline.run`; this module only does the process's I/O.
"""

from __future__ import annotations

import sys

from watchdog import pipeline


def main(harness_name: str, policy_dir: str | None, escalate: bool, explain: bool) -> int:
    """CLI entry for `hook` and `eval`: real stdin, stdout, stderr."""
    data = sys.stdin.buffer.read()
    result = pipeline.run(harness_name, data, policy_dir=policy_dir, escalate=escalate,
                          explain=explain)
    for line in result.trace:
        sys.stderr.write(line + "\n")
    for line in result.stderr:
        sys.stderr.write(line + "\n")
    sys.stdout.write(result.stdout)
    sys.stdout.flush()
    return result.exit_code
