"""Secrets known by their name, and values that only look like one.

`secret_kind("GITHUB_TOKEN")` is "token": the kind names the marker (`[REDACTED:token]`), and
the finders here redact the value given to such a name wherever it is written: `KEY=v`, `.env`
lines, `key: v`, `"key": "v"`, `--key v`, `key: str = "v"`, and settings commands
(`aws configure set aws_secret_access_key v`). Code is not a value (`token = get_token()`).

`is_placeholder("your_api_key_here")` is true, and redaction (watchdog/redact.py) leaves every
such candidate alone, whichever finder found it: the judge needs to read
`API_KEY=your_api_key_here` or `AKIAIOSFODNN7EXAMPLE` as the harmless example it is, and
redacting it protects nothing while hiding what the agent actually wrote.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator

__all__ = ["ARG", "QUOTED", "STRING_PREFIXES", "Finder", "Span", "is_placeholder",
           "named_finders", "secret_kind"]

Span = tuple[int, int, str]  # (start, end, kind)
Finder = Callable[[str], Iterator[Span]]

QUOTED = r"""\\"(?:[^"\\\n]|\\[^"\n])*\\"|"(?:[^"\\\n]|\\.)*"|'[^'\n]*'"""  # "x" 'x' \"x\"
BARE = r"""[^\s"'`;&|<>(){}\[\]]+"""  # a shell word, stopping at code's brackets
ARG = rf"""{QUOTED}|[^\s"'`;&|<>]+"""  # a command's argument: brackets are a password's too
STRING_PREFIXES = frozenset({"f", "r", "b", "u", "rb", "br", "fr", "rf"})

_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_QUALIFIERS = frozenset({"base", "value", "b64", "base64", "raw", "encoded", "enc", "prod",
                         "dev", "test", "staging", "live"})
_LAST_WORD = {
    "password": "password", "passwd": "password", "passphrase": "password", "pass": "password",
    "pwd": "password",
    "secret": "secret", "secrets": "secret", "token": "token",
    "apikey": "api-key", "accesskey": "access-key", "secretkey": "secret",
    "privatekey": "private-key", "credential": "credentials", "credentials": "credentials",
    "cookie": "cookie", "authorization": "authorization", "auth": "auth",
}
# One word that ends in a secret word (`PGPASSWORD`, `GHTOKEN`). Not `pass` (`bypass`), `pwd`
# (`OLDPWD`, the shell's) nor `key` (`monkey`).
_COMPOUND_ENDS = (("password", "password"), ("passwd", "password"), ("passphrase", "password"),
                  ("storepass", "password"), ("keypass", "password"), ("token", "token"),
                  ("secret", "secret"), ("apikey", "api-key"))
_KEY_OWNERS = {"api": "api-key", "access": "access-key", "secret": "secret",
               "private": "private-key", "auth": "secret", "signing": "secret",
               "encryption": "secret", "master": "secret", "client": "secret",
               "session": "secret", "account": "secret", "service": "secret"}


@functools.lru_cache(maxsize=4096)
def secret_kind(name: str) -> str | None:
    """The kind of secret a key or variable name announces (`GITHUB_TOKEN` -> "token"), or None.

    Judged by the last word, so `max_tokens`, `password_file` and `author` are not secrets;
    qualifiers such as `_BASE` are skipped first (`SECRET_KEY_BASE`). A lone `PWD` is the shell's
    working directory.
    """
    words = [w.lower() for w in _WORDS.findall(name)]
    while words and (words[-1] in _QUALIFIERS or words[-1].isdigit()):
        words.pop()
    if not words or words == ["pwd"]:
        return None
    if words[-1] == "key" and len(words) > 1:
        kind = _KEY_OWNERS.get(words[-2])
    else:
        kind = _LAST_WORD.get(words[-1])
        if kind is None:
            kind = next((k for end, k in _COMPOUND_ENDS if words[-1].endswith(end)), None)
    if kind in ("secret", "access-key") and "aws" in words and "secret" in words:
        return "aws-secret-key"
    return kind


# -- placeholders -----------------------------------------------------------------------------

_PLACEHOLDER = re.compile(
    r"""(?ix)
    ^(?:dummy|example|sample|placeholder|redacted|changeit|none|null|nil|undefined|todo|tbd)$
    | ^(?:change|replace)[-_.]?me(?:[-_.][a-z0-9_.-]*)?$   # change-me, changeme_please
    | ^<[^<>]*>$ | ^\{[^{}]*\}$ | ^\{\{.*\}\}$ | ^%[a-z_]\w*%$  # <your-token>, {x}, {{ x }}
    | ^(?:\.{3,}|…)$                                       # ...
    | ^\$(?:[a-z_]\w*|\{.*\}|\(.*\))$                      # $X, ${X:?...}, ${{ secrets.X }}, $(..)
    | (?:^|[-_.])(?:your|dummy|example|placeholder)(?:[-_.]|$)  # your_api_key_here, sk-example-1
    | [-_.]here$                                           # token-goes-here
    """
)
_DOC_EXAMPLE = re.compile(r"EXAMPLE(?:KEY)?$")  # AWS's documented keys end so
_MASKED = re.compile(r"x{4,}|X{4,}|\*{3,}|•{3,}")
_MASK_CHARS = frozenset("xX*•")
_VENDOR_PREFIX = re.compile(r"^[A-Za-z0-9]{1,10}[-_]")


_REFERENCE = re.compile(r"\$\{.*\}|\$\(.*\)|<[^<>]*>|\{\{.*\}\}", re.DOTALL)


def is_placeholder(value: str) -> bool:
    """Whether a would-be secret is a placeholder, a documented example, a reference to a
    variable or a masked value (`sk-****abcd`, `sk-xxxx`), not a credential.

    Words count only between `-`, `_` or `.` (`dummy`, `example.key`, `-your-`): a random token
    never holds one so, and `Example!2024` may well be someone's password. A mask counts when
    masking characters make up half of it. A value with spaces in it (a cookie, a digest
    header) is one only when it is a reference as a whole (`${{ secrets.X }}`, `$(cat f)`).
    """
    if any(c.isspace() for c in value):
        return bool(_REFERENCE.fullmatch(value))
    if _PLACEHOLDER.search(value) or _DOC_EXAMPLE.search(value):
        return True
    if not _MASKED.search(value):
        return False
    body = _VENDOR_PREFIX.sub("", value, count=1)  # `sk-`, `xoxb-`
    return 2 * sum(c in _MASK_CHARS for c in body) >= len(body)


# -- values known by their name -----------------------------------------------------------------

# `KEY=v`, `key: v`, `"key": "v"`, `--key=v`, `key: str = "v"`, `key := "v"`; a lone
# bracket as the value is for `.env` values that start with one (`X_PASSWORD=(ab)c`)
_ASSIGN_NAME = r"(?<![\w.$-])(?<!\$\{)(?P<name>-{0,2}[A-Za-z_][\w.-]*)"
_ASSIGN = (_ASSIGN_NAME + r"(?:\\?[\"'])?[ \t]*"
           r"(?::[ \t]*[A-Za-z_][\w\[\],.| ]*?[ \t]*=(?![=>~])|:=|=(?![=>~])|:(?![:/\\]))"
           rf"[ \t]*(?P<value>{QUOTED}|{BARE}|[(\[{{])")
_FLAG_NAME = r"(?<![\w-])(?P<name>--?[A-Za-z][\w-]*)"
_FLAG = _FLAG_NAME + rf"[ \t]+(?P<value>{QUOTED}|{BARE})"
_NAME_HINT = re.compile(r"pass|pwd|secret|token|key|auth|credential|cookie", re.IGNORECASE)
_CODE_WORDS = frozenset({"none", "null", "nil", "true", "false", "undefined", "str", "string",
                         "bytes", "int", "number", "bool", "boolean", "any", "unknown", "object",
                         "optional", "secretstr", "self", "this", "await", "new", "yield",
                         "lambda", "function"})
_IDENT = re.compile(r"[A-Za-z_]+(?:\.[A-Za-z_]\w*)*")
_DOTENV_HEAD = re.compile(r"[ \t]*(?:(?:export|declare[ \t]+-x)[ \t]+)?")
_DOTENV_HEAD_MAX = 64
_NON_SPACE = re.compile(r"\S*")
_ENV_WORD = re.compile(r"[^\s\"'`;&|<>\\]*")
_CALL = re.compile(r"[A-Za-z_][\w.]*[(\[]")
_WHOLE_CALL = re.compile(r"[A-Za-z_][\w.]*(?:\([^()]*\)|\[[^\[\]]*\])")

def _named_value_finder(name_pattern: str, pattern: str, flag: bool) -> Finder:
    """Values whose name says secret, in shell, dotenv, YAML, JSON, code and CLI flags.
    A rejected name's value is scanned again, so `CMD="DB_PASSWORD=x ..."` is still caught.
    Names are judged before their values are read: a value runs to the end of a word, and
    reading one for every name (`A=A=A=...`) would take time in the square of the length."""
    names, regex = re.compile(name_pattern), re.compile(pattern)

    def find(text: str) -> Iterator[Span]:
        pos = 0
        while (n := names.search(text, pos)) is not None:
            name = n.group("name")
            kind = secret_kind(name) if _NAME_HINT.search(name) else None
            if flag and name.lstrip("-").lower().startswith("no-"):
                kind = None
            m = regex.match(text, n.start()) if kind not in (None, "authorization") else None
            if m is None:
                pos = n.end()
                continue
            value = m.group("value")
            env_end = None if flag else _env_value_end(name, m, text)
            if env_end == -1 or (env_end is None and not _is_literal(name, m, text, flag)):
                pos = m.end()  # code or a reference: a word, so no assignment hides inside
                continue
            start = m.start("value")
            end = m.end("value") if env_end is None else env_end
            if value[0] in "\"'\\":
                quote = 2 if value[0] == "\\" else 1
                start, end = start + quote, end - quote
            elif env_end is None:
                while end > start and text[end - 1] in ",.":
                    end -= 1
            if end > start:
                yield start, end, kind or "secret"
            pos = max(end, m.end())

    return find


def _env_value_end(name: str, m: re.Match[str], text: str) -> int | None:
    """Where an environment variable's unquoted value ends (`X_TOKEN=v`: upper case, `=` with
    no space), -1 when it is code, None when `name=value` is no such assignment.

    On a line of its own, as in a `.env` file, the value runs to the next space: brackets and
    `;` are a password's characters there, and stopping at them leaked the rest. Inside a
    command it ends at the shell's separators, but not at a bracket (`'X_PASSWORD=ab)c'`)."""
    value = m.group("value")
    if not name.isupper() or value[0] in "\"'\\$%`" or text[m.end("name"):m.start("value")] != "=":
        return None
    start, at = m.start("value"), m.start("name")
    lowest = max(0, at - _DOTENV_HEAD_MAX)  # a line start further back has no dotenv head
    line = text.rfind("\n", lowest, at) + 1 or (0 if lowest == 0 else -1)
    if line >= 0 and _DOTENV_HEAD.fullmatch(text, line, at):
        end = _NON_SPACE.match(text, start).end()  # type: ignore[union-attr]
        code = _WHOLE_CALL.fullmatch(text, start, end)
    else:
        end = _ENV_WORD.match(text, start).end()  # type: ignore[union-attr]
        code = _CALL.match(text, start, end)
    return -1 if code or not any(c.isalnum() for c in text[start:end]) else end


def _is_literal(name: str, m: re.Match[str], text: str, flag: bool) -> bool:
    """Whether an unquoted value is a literal rather than code (`api_key=api_key`,
    `token = get_token()`, `password: str`) or a reference (`$DB_PASSWORD`)."""
    value = m.group("value")
    if value[0] in "\"'\\":
        return True
    if value[0] in "$%" or not any(c.isalnum() for c in value):
        return False
    if flag:
        return not value.startswith("-")  # the next option: this one takes no value
    nxt = text[m.end() : m.end() + 1]
    if nxt in ("(", "[") or (nxt in ("'", '"') and value.lower() in STRING_PREFIXES):
        return False  # a call, an index, the `f` of `f"..."`
    if name.isupper():
        return True  # an environment variable: any word is its value
    if value.lower() in _CODE_WORDS or value.lower() in name.lower():
        return False
    if _IDENT.fullmatch(value) and ("." in value or "_" in value):
        return False
    sep = text[m.end("name") : m.start("value")]
    return not (":" in sep and value[0].isupper() and value.isalpha())  # `token: Secret`


_SETTINGS_COMMAND = re.compile(
    r"\b(?:aws[ \t]+configure[ \t]+set|git[ \t]+config|(?:npm|yarn|pnpm)[ \t]+config[ \t]+set"
    r"|poetry[ \t]+config|pulumi[ \t]+config[ \t]+set|dotnet[ \t]+user-secrets[ \t]+set)\b")
_SETTINGS_WORD = re.compile(rf"[ \t]+({ARG})")
_OPTIONS_WITH_VALUE = frozenset({"--profile", "--region", "--file", "-f", "--stack", "-s",
                                 "--cwd", "--project", "--location", "--blob", "--id"})


def _settings_finder() -> Finder:
    """`aws configure set aws_secret_access_key VALUE` and the like, where the value is
    the word after a secret-named setting (`git config github.token X`, `npm config set
    //registry/:_authToken X`, `poetry config http-basic.repo USER PASSWORD`)."""

    def find(text: str) -> Iterator[Span]:
        if "config" not in text and "user-secrets" not in text:
            return
        for m in _SETTINGS_COMMAND.finditer(text):
            words: list[tuple[int, int, str]] = []
            pos, skip, secret_flag = m.end(), False, False
            while len(words) < 3 and (w := _SETTINGS_WORD.match(text, pos)) is not None:
                pos, word = w.end(), w.group(1)
                if skip or word.startswith("-"):
                    secret_flag = secret_flag or word == "--secret"
                    skip = not skip and word in _OPTIONS_WITH_VALUE
                    continue
                words.append((w.start(1), w.end(1), word))
            if len(words) < 2:
                continue
            name = words[0][2].strip("\"'")
            value = words[1]
            kind = "secret" if secret_flag else _setting_kind(name)
            if name.startswith("http-basic."):  # poetry: the user, then the password
                value, kind = (words[2], "password") if len(words) > 2 else (value, None)
            if kind is not None:
                start, end, word = value
                quote = 1 if word[0] in "\"'" and len(word) > 1 else 0
                yield start + quote, end - quote, kind

    return find


def _setting_kind(name: str) -> str | None:
    """A setting's last part names it (`github.token`); `pypi-token.<repo>`'s first does."""
    parts = [p for p in re.split(r"[.:/]", name) if p]
    if not parts:
        return None
    kind = secret_kind(parts[-1])
    if kind is None and len(parts) == 2 and secret_kind(parts[0]) in ("token", "password"):
        kind = secret_kind(parts[0])
    return kind


def named_finders() -> tuple[Finder, ...]:
    """The finders of values known by their name: settings commands, assignments, flags."""
    return (_settings_finder(), _named_value_finder(_ASSIGN_NAME, _ASSIGN, flag=False),
            _named_value_finder(_FLAG_NAME, _FLAG, flag=True))
