"""regopy on the hook path: load a checked bundle once, query our entrypoints with an event.

Uses regopy's C-level calls for the query instead of `Output`, which parses the result twice
and raises a bare JSONDecodeError on some undefined results. Any failure inside rego-cpp
becomes a PolicyRuntimeError with rego's own message.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from typing import Any

from watchdog.errors import PolicyRuntimeError

#: rego-cpp work, one thread at a time: an interpreter takes one query at a time, and
#: QuietStdout swaps the process's fd 1 (`watchdog serve` answers events from many threads).
REGO_LOCK = threading.RLock()


class QuietStdout:
    """Send fd 1 to /dev/null while rego-cpp runs: it prints diagnostics there (compile errors,
    and some builtins' failures at evaluation time), and a hook's stdout belongs to the harness.
    Holds REGO_LOCK while fd 1 is swapped.
    """

    def __enter__(self) -> None:
        REGO_LOCK.acquire()
        sys.stdout.flush()
        self._saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)

    def __exit__(self, *exc: object) -> None:
        try:
            os.dup2(self._saved, 1)
            os.close(self._saved)
        finally:
            REGO_LOCK.release()


def error_messages(node: Any) -> list[str]:
    """The ErrorMessage texts under a regopy Node (an output or a bundle that failed)."""
    from regopy.rego_shared import NodeKind, rego_node_value

    messages: list[str] = []

    def visit(n: Any) -> None:
        if n.kind == NodeKind.ErrorMessage:
            messages.append(rego_node_value(n._impl))
            return
        for i in range(len(n._children)):
            visit(n.at(i))

    with contextlib.suppress(Exception):  # best effort: we are already reporting an error
        visit(node)
    return [m for m in messages if m]


def _error_text(out_impl: Any) -> str:
    from regopy.node import Node
    from regopy.rego_shared import rego_output_node

    return "; ".join(error_messages(Node(rego_output_node(out_impl)))) or "rego evaluation error"


class Engine:
    """One loaded bundle. Construct it only after `bundle.bundle_ok` said the file is intact."""

    def __init__(self, bundle_path: str) -> None:
        import regopy

        self._regopy = regopy
        self._interp = regopy.Interpreter()
        try:
            self._bundle = self._interp.load_bundle(bundle_path, regopy.BundleFormat.Binary)
        except Exception as exc:  # noqa: BLE001 - rego-cpp raises RegoError or worse
            raise PolicyRuntimeError(f"cannot load the policy bundle {bundle_path}: {exc}") from exc

    def query(self, entrypoint: str, input_doc: dict[str, Any]) -> Any:
        """The entrypoint's value for this input; undefined is an error (evaluate must exist)."""
        from regopy import rego_shared as rs

        with REGO_LOCK:  # the input term and the query belong together
            try:
                # The input goes in as JSON text: terms built by regopy.Input hold strings in a
                # form some builtins reject (json.marshal of an input array is undefined and
                # prints a diagnostic), so a policy would silently decide differently.
                self._interp.set_input_term(json.dumps(input_doc))
                with QuietStdout():
                    out = rs.rego_bundle_query_entrypoint(
                        self._interp._impl, self._bundle._impl, entrypoint
                    )
            except Exception as exc:  # noqa: BLE001
                raise PolicyRuntimeError(f"policy evaluation failed: {exc}") from exc
            try:
                if not rs.rego_output_ok(out):
                    raise PolicyRuntimeError(
                        f"a policy raised an error at run time: {_error_text(out)}. "
                        "Run 'watchdog eval --explain' on this event to see which."
                    )
                text = rs.rego_output_string(out)
            finally:
                rs.rego_free_output(out)
        if text == "undefined":
            raise PolicyRuntimeError(
                f"the entrypoint {entrypoint} is undefined. Check system/evaluate.rego: "
                "`evaluate` must always be an object."
            )
        try:
            return json.loads(text)["expressions"][0]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise PolicyRuntimeError(f"unexpected output from rego: {text[:200]}") from exc


_LOADED: dict[str, Engine] = {}


def load(bundle_path: str) -> Engine:
    """An Engine per bundle file for this process: a hook loads one; an in-process replay of
    many events (the eval harness) reuses it instead of loading the bundle per event. Bundle
    files are named by content hash and CRC, so a cached path never changes meaning."""
    engine = _LOADED.get(bundle_path)
    if engine is None:
        with REGO_LOCK:
            engine = _LOADED.get(bundle_path)
            if engine is None:
                engine = _LOADED[bundle_path] = Engine(bundle_path)
    return engine
