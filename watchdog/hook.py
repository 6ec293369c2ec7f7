"""The command hook: one event on stdin, the harness's answer on stdout, its exit code.

Everything between is `pipeline.run`, in this process (`main`) or in a running `watchdog
serve` (`main_served`, which falls back to `pipeline.run` when the server cannot answer);
this module only does the process's I/O. The pipeline is imported inside the functions so
that a served hook never loads it unless it falls back.
"""

from __future__ import annotations

import os
import sys


def _write(stdout: str | bytes, stderr: list[str], exit_code: int) -> int:
    for line in stderr:
        sys.stderr.write(line + "\n")
    if isinstance(stdout, bytes):
        sys.stdout.flush()
        sys.stdout.buffer.write(stdout)
    else:
        sys.stdout.write(stdout)
    sys.stdout.flush()
    return exit_code


def main(harness_name: str, policy_dir: str | None, escalate: bool, explain: bool) -> int:
    """CLI entry for `hook` and `eval`: real stdin, stdout, stderr."""
    from watchdog import pipeline

    data = sys.stdin.buffer.read()
    result = pipeline.run(harness_name, data, policy_dir=policy_dir, escalate=escalate,
                          explain=explain)
    return _write(result.stdout, result.trace + result.stderr, result.exit_code)


def main_served(harness_name: str, url: str | None, policy_dir: str | None,
                escalate: bool) -> int:
    """CLI entry for `hook --serve [URL]`: the server's answer, else the in-process one plus a
    one-line note on stderr and in the log (never a silent allow)."""
    from watchdog import serve_client

    data = sys.stdin.buffer.read()
    env = serve_client.served_env(os.environ)
    url = url or serve_client.default_url(os.environ)
    try:
        if url is None:
            raise serve_client.Unavailable(
                f"no server recorded (start 'watchdog serve' or set {serve_client.URL_ENV})")
        answer = serve_client.ask(url, harness_name, data, policy_dir, escalate, os.environ)
    except serve_client.Unavailable as exc:
        from watchdog import dirs, logs, pipeline

        note = f"watchdog: serve at {url or '-'} not used: {exc}; evaluated in-process"
        logs.write(dirs.state_dir(env), "warning", "serve_unavailable", url=url,
                   reason=str(exc), harness=harness_name)
        result = pipeline.run(harness_name, data, env=env, policy_dir=policy_dir,
                              escalate=escalate)
        return _write(result.stdout, [note, *result.stderr], result.exit_code)
    return _write(answer.stdout, answer.stderr, answer.exit_code)
