"""The command hook's client for `watchdog serve`: post the event, reproduce the answer.

`watchdog hook --serve [URL]` sends stdin to a running `watchdog serve` and prints what the
server's pipeline answered (stdout, stderr lines, exit code) exactly as the in-process hook
would. The caller falls back to evaluating in-process when `ask` raises `Unavailable`: a
server that is down, slow to accept, rejects the token or answers anything but a pipeline
result never turns into a silent allow.

The request carries what the hook's own command line and environment decide (`--watchdog`,
`--policy-dir`, the `WATCHDOG_*` variables), so the served answer is the one the fallback
would give. The files client and server share are kept here too: `serve.token` (the
per-install token) and `serve.url` (where the running server listens).

This runs once per tool call, and imports are most of its cost, so HTTP is spoken over
`_socket` (measured here over a bare interpreter: `http.client` +20 ms with `email` and `ssl`,
`socket` +10 ms with `enum` and `selectors`, `getaddrinfo` +4 ms with the IDNA codec, `typing`
+13 ms, `_socket` +1 ms).
"""

from __future__ import annotations

import _socket
import os

from watchdog import dirs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

URL_FILE = "serve.url"  # written by `watchdog serve`: the URL clients use
TOKEN_FILE = "serve.token"  # the per-install token, mode 0600
URL_ENV, TOKEN_ENV = "WATCHDOG_SERVE_URL", "WATCHDOG_SERVE_TOKEN"
CONNECT_TIMEOUT_S = 0.25  # a local server accepts in well under a millisecond
READ_TIMEOUT_S = 25.0  # below Claude Code's 30 s UserPromptSubmit default: time to fall back
MAX_RESPONSE = 16 * 1024 * 1024


class Unavailable(Exception):
    """The server gave no pipeline answer; the message says why (for the stderr note)."""


class Answer:
    """The served pipeline's answer: what to print, and the exit code."""

    __slots__ = ("stdout", "stderr", "exit_code")

    def __init__(self, stdout: bytes, stderr: list[str], exit_code: int) -> None:
        self.stdout, self.stderr, self.exit_code = stdout, stderr, exit_code


def escape(text: str) -> str:
    """A header-safe (ASCII, no CR/LF) form of any text; `unescape` reverses it exactly."""
    return text.encode("unicode_escape").decode("ascii")


def unescape(raw: str | bytes) -> str:
    data = raw.encode("latin-1") if isinstance(raw, str) else raw
    return data.decode("unicode_escape")


def served_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment a served or fallback evaluation sees: without serve's own variables,
    which only the client and the server read."""
    return {k: v for k, v in env.items() if k not in (URL_ENV, TOKEN_ENV)}


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


def default_url(env: Mapping[str, str]) -> str | None:
    """WATCHDOG_SERVE_URL, else the URL the last `watchdog serve` recorded in the state dir."""
    return env.get(URL_ENV) or _read(os.path.join(dirs.state_dir(env), URL_FILE))


def token(env: Mapping[str, str]) -> str | None:
    """WATCHDOG_SERVE_TOKEN, else the per-install token file `watchdog serve` made."""
    return env.get(TOKEN_ENV) or _read(os.path.join(dirs.state_dir(env), TOKEN_FILE))


def ensure_token(state_dir: str) -> tuple[str, str]:
    """The per-install token and its path, created (0600) on first use."""
    path = os.path.join(state_dir, TOKEN_FILE)
    try:
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            if os.stat(path).st_mode & 0o077:
                os.chmod(path, 0o600)  # someone loosened it: the token is a credential
        else:
            import secrets

            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32) + "\n")
        with open(path, encoding="utf-8") as fh:
            secret = fh.read().strip()
    except OSError as exc:
        from watchdog.errors import StateError

        raise StateError(f"cannot create or read the serve token {path} ({exc.strerror}): fix "
                         "the state dir's permissions, or set WATCHDOG_STATE_DIR.") from exc
    if len(secret) < 16:
        from watchdog.errors import StateError

        raise StateError(f"the serve token in {path} is too short: delete the file and start "
                         "'watchdog serve' again to make a new one.")
    return secret, path


def record_url(state_dir: str, url: str) -> None:
    """Write the URL `hook --serve` reads (atomically: clients may read it at any time)."""
    path = os.path.join(state_dir, URL_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(url + "\n")
    os.replace(tmp, path)


def forget_url(state_dir: str, url: str) -> None:
    """Remove the recorded URL, unless a server started since has replaced it."""
    path = os.path.join(state_dir, URL_FILE)
    try:
        with open(path, encoding="utf-8") as fh:
            if fh.read().strip() == url:
                os.unlink(path)
    except OSError:
        pass


def _address(url: str) -> tuple[str, int]:
    rest = url.removeprefix("http://")
    if rest == url:
        raise Unavailable(f"{url} is not an http:// URL")
    hostport = rest.split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise Unavailable(f"{url} has no host:port")
    return host.strip("[]"), int(port)


def request(harness: str, body: bytes, secret: str, policy_dir: str | None, escalate: bool,
            env: Mapping[str, str]) -> bytes:
    """The request bytes: the event, the token, and the hook's flags and WATCHDOG_* settings."""
    lines = [
        f"POST /hook/{harness} HTTP/1.1",
        "Host: watchdog",
        "Connection: close",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        f"Authorization: Bearer {secret}",
        "X-Watchdog-Client: hook",
        f"X-Watchdog-Escalate: {int(escalate)}",
        f"X-Watchdog-Policy-Dir: {escape(os.path.abspath(policy_dir)) if policy_dir else ''}",
    ]
    lines += [f"X-Watchdog-Env: {escape(f'{k}={v}')}" for k, v in sorted(env.items())
              if k.startswith("WATCHDOG_")]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


def _parse(data: bytes) -> tuple[int, list[tuple[str, bytes]], bytes]:
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        raise Unavailable("the server closed the connection before answering")
    status, *fields = head.split(b"\r\n")
    parts = status.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise Unavailable(f"not an HTTP answer: {status[:80]!r}")
    headers = []
    for field in fields:
        name, _, value = field.partition(b":")
        headers.append((name.strip().lower().decode("latin-1"), value.strip()))
    return int(parts[1]), headers, rest


def _exchange(url: str, data: bytes) -> bytes:
    host, port = _address(url)
    sock = _socket.socket(_socket.AF_INET6 if ":" in host else _socket.AF_INET,
                          _socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT_S)
        sock.connect((host, port))
    except OSError as exc:
        sock.close()
        raise Unavailable(f"cannot connect ({exc.strerror or exc})") from exc
    # Read up to Content-Length, not EOF: a stale URL may point at some other server that
    # keeps the connection open. `need` is the answer's full size once its headers are in.
    buf = bytearray()
    need = -1
    try:
        sock.settimeout(READ_TIMEOUT_S)
        sock.sendall(data)
        while len(buf) <= MAX_RESPONSE and (need < 0 or len(buf) < need):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
            end = buf.find(b"\r\n\r\n") if need < 0 else -1
            for line in bytes(buf[:end]).lower().split(b"\r\n") if end >= 0 else ():
                if line.startswith(b"content-length:") and line[15:].strip().isdigit():
                    need = end + 4 + int(line[15:])
    except TimeoutError as exc:
        raise Unavailable(f"no answer within {READ_TIMEOUT_S:g} s") from exc
    except OSError as exc:
        raise Unavailable(f"connection failed ({exc.strerror or exc})") from exc
    finally:
        sock.close()
    return bytes(buf)


def ask(url: str, harness: str, body: bytes, policy_dir: str | None, escalate: bool,
        env: Mapping[str, str]) -> Answer:
    """The served pipeline's answer for one event, or Unavailable saying why there is none."""
    secret = token(env)
    if secret is None:
        raise Unavailable(f"no token (run 'watchdog serve' once, or set {TOKEN_ENV})")
    status, headers, rest = _parse(_exchange(url, request(
        harness, body, secret, policy_dir, escalate, served_env(env))))
    exit_code = next((v for k, v in headers if k == "x-watchdog-exit"), None)
    if exit_code is None or not exit_code.lstrip(b"-").isdigit():
        raise Unavailable(f"the server answered HTTP {status} without a decision")
    length = next((v for k, v in headers if k == "content-length"), None)
    if length is not None and length.isdigit() and len(rest) < int(length):
        raise Unavailable("the answer was cut short")
    stdout = rest[: int(length)] if length is not None and length.isdigit() else rest
    stderr = [unescape(v) for k, v in headers if k == "x-watchdog-stderr"]
    return Answer(stdout, stderr, int(exit_code))
