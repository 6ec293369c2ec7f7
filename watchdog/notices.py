"""Notices the user sees once per session ("no policies here: the default pack applies").

A notice that repeats on every tool call is noise people learn to ignore; one that never
repeats is missed in a long session's scrollback. Once per session and per kind is the middle:
the first event of each session says it. Each (session, key) is one empty file created with
O_CREAT | O_EXCL, so parallel hooks of a session show it once, with one syscall and no lock.
"""

from __future__ import annotations

import os
import zlib

from watchdog.statefile import safe_name

FOLDER = "notices"


def once(state_dir: str, session_id: str, key: str) -> bool:
    """True the first time this session meets `key` (and when the state dir can't be written:
    showing a notice twice beats never showing it)."""
    safe = safe_name(session_id, 96)  # leaves room for the key's digest
    digest = f"{zlib.crc32(key.encode()):08x}"  # hashlib costs imports on the hook path
    path = os.path.join(state_dir, FOLDER, f"{safe}-{digest}")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    except FileNotFoundError:
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        except OSError:
            return True
    except OSError:
        return True
    os.close(fd)
    return True
