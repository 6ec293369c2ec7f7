"""Which hook commands in an agent's config are watchdog's: shared by every harness's setup.

`init` rewrites ours (a new path, a new flag) instead of adding a second copy, and `uninstall`
removes exactly ours; both need the same answer for every form init writes or wrote.
"""

from __future__ import annotations

import os
import shlex


def is_ours(command: object, ours: str = "") -> bool:
    """A watchdog hook command: `watchdog hook ...`, `/abs/path/watchdog hook ...` (quoted or
    not), `python -m watchdog hook ...`, or exactly `ours` (a --command wrapper need not be
    named watchdog)."""
    if not isinstance(command, str):
        return False
    if ours and command == ours:
        return True
    try:
        words = shlex.split(command)
    except ValueError:
        return "watchdog hook" in command
    return any(os.path.basename(word) == "watchdog" and nxt == "hook"
               for word, nxt in zip(words, words[1:], strict=False))
