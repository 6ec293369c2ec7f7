"""Secret redaction: the last step before agent data leaves the process.

Tool inputs carry whatever the agent touched: `.env` files, `curl -H "Authorization: ..."`,
connection strings, keys pasted into prompts. An escalated event is queued in Redis, sent to the
judge's LLM provider and logged; none of them may receive a credential, so everything that
leaves goes through `redact()` first. A secret becomes `[REDACTED:<kind>]` and the text around
it stays, so the judge still reads `curl -H "Authorization: Bearer [REDACTED:bearer-token]"`.

Covered: provider keys and tokens (AWS, GitHub, GitLab, Slack, Stripe, OpenAI, Anthropic,
Google, npm, PyPI, Hugging Face, SendGrid, Mailchimp, Twilio, Discord, Telegram, Azure, ...),
JWTs, private key blocks (the whole block), passwords in URLs, `Authorization` and `Cookie`
headers, values whose name says secret (`export DB_PASSWORD=x`, `API_KEY="x"`, `--token x`,
`"password": "x"`, `.env` lines, `mysql -px`), quoted high-entropy strings, and in `redact()`
every string under a secret-named key. Token formats, keyword rules and the entropy measure come
from detect-secrets' plugins; our own patterns fill what they lack (marked "own").

Not covered: a secret nobody can recognise, i.e. in no known format, with no secret-sounding name
next to it and not in quotes (`./deploy f8Kd93jQ...`); a quoted random string shorter than about
32 characters without such a name; a letters-only value given to a lowercase name in code
(`password=hunter`, which reads as a variable). Redaction fails closed (an internal error
withholds the whole string) and is idempotent: redacting the output again changes nothing.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["redact", "redact_text", "secret_kind"]

Span = tuple[int, int, str]
Finder = Callable[[str], Iterator[Span]]

FAILED = "[REDACTED:unscannable]"
TOO_DEEP = "[REDACTED:too-deep]"
MAX_DEPTH = 200  # deeper than any JSON an agent sends; also ends a cyclic structure
_MAX_PASSES = 8  # two in practice; more only for contrived input
MARKER = re.compile(r"\[REDACTED:[a-z0-9-]+\]")

# -- names that say "secret" ------------------------------------------------------------------

_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_QUALIFIERS = frozenset({"base", "value", "b64", "base64", "raw", "encoded", "enc", "prod",
                         "dev", "test", "staging", "live"})
_LAST_WORD = {
    "password": "password", "passwd": "password", "passphrase": "password", "pass": "password",
    "pwd": "password", "secret": "secret", "secrets": "secret", "token": "token",
    "apikey": "api-key", "accesskey": "access-key", "secretkey": "secret",
    "privatekey": "private-key", "credential": "credentials", "credentials": "credentials",
    "cookie": "cookie", "authorization": "authorization", "auth": "auth",
}
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
    if kind in ("secret", "access-key") and "aws" in words and "secret" in words:
        return "aws-secret-key"
    return kind


# -- the rules --------------------------------------------------------------------------------

# detect-secrets plugins: (module, class, kind of each denylist regex, value is in group 1).
# Left out: Cloudant, SoftLayer and the IBM plugins, assignment regexes for retired services
# that cost a third of the scan; the name rule below catches their `..._key = value` forms.
_PLUGINS: tuple[tuple[str, str, tuple[str, ...], bool], ...] = (
    ("aws", "AWSKeyDetector", ("aws-access-key", "aws-secret-key"), True),
    ("github_token", "GitHubTokenDetector", ("github-token",), False),
    ("gitlab_token", "GitLabTokenDetector", ("gitlab-token",), False),
    ("slack", "SlackDetector", ("slack-token", "slack-webhook"), False),
    ("stripe", "StripeDetector", ("stripe-key",), False),
    ("openai", "OpenAIDetector", ("openai-key",), False),
    ("jwt", "JwtTokenDetector", ("jwt",), False),
    ("sendgrid", "SendGridDetector", ("sendgrid-key",), False),
    ("mailchimp", "MailchimpDetector", ("mailchimp-key",), False),
    ("twilio", "TwilioKeyDetector", ("twilio-key",), False),
    ("discord", "DiscordBotTokenDetector", ("discord-token",), False),
    ("telegram_token", "TelegramBotTokenDetector", ("telegram-token",), False),
    ("pypi_token", "PypiTokenDetector", ("pypi-token",), False),
    ("square_oauth", "SquareOAuthDetector", ("square-secret",), False),
    ("azure_storage_key", "AzureStorageKeyDetector", ("azure-storage-key",), False),
    ("artifactory", "ArtifactoryDetector", ("artifactory-token",), False),
    ("basic_auth", "BasicAuthDetector", ("password",), True),
)
# own: formats detect-secrets 1.5 lacks, or has only in part: (kind, trigger, regex)
_OWN_TOKENS = (
    ("anthropic-key", "sk-ant-", r"sk-ant-[A-Za-z0-9_-]{20,}"),
    ("openai-key", "sk-", r"(?<![A-Za-z0-9])sk-(?!ant-)(?=[A-Za-z_-]*\d)[A-Za-z0-9_-]{20,}"),
    ("google-api-key", "aiza", r"AIza[0-9A-Za-z_-]{35}"),
    ("github-token", "github_pat_", r"github_pat_[A-Za-z0-9_]{22,}"),
    ("slack-token", "xapp-", r"xapp-\d+-[A-Za-z0-9-]{10,}"),
    ("stripe-key", "_test_", r"(?:sk|rk)_test_[0-9a-zA-Z]{16,}"),
    ("stripe-key", "whsec_", r"whsec_[A-Za-z0-9]{20,}"),
    ("npm-token", "npm_", r"npm_[A-Za-z0-9]{36}"),
    ("huggingface-token", "hf_", r"hf_[A-Za-z0-9]{30,}"),
)
# own: secrets known by what surrounds them; group `v` is the value, `s` a header's scheme
_OWN_SPANS = (
    # BasicAuthDetector (also used) stops at `!$&()*+,;=`, which RFC 3986 allows in a password
    ("password", "://", r"(?i)\b[a-z][a-z0-9+.-]*://[^\s:/?#@\"'<>\[\]]*:(?P<v>[^\s/?#\"'<>]+)@"),
    ("authorization", "authorization",
     r"(?i)(?<![\w-])(?:proxy-)?authorization(?:\\?[\"'])?[ \t]*[:=][ \t]*(?:\\?[\"'])?"
     r"(?:(?P<s>bearer|token|basic|bot|apikey|api-key|sso-key|key|pat)\s+)?(?P<v>(?:digest|oauth"
     r"|aws4-hmac-sha256|hmac[\w-]*|signature|negotiate|ntlm)\s[^\"'\\\r\n]+|[^\s\"'\\,;]+)"),
    ("bearer-token", "bearer", r"(?i)(?<![\w-])bearer\s+(?P<v>(?=[\w.~+/-]*\d)[\w.~+/-]{8,}=*)"),
    ("basic-auth", "basic", r"(?<![\w-])Basic\s+(?P<v>[A-Za-z0-9+/]{8,}={0,2})(?![\w+/=])"),
    ("cookie", "cookie", r"(?i)(?<![\w-])(?:set-)?cookie(?:\\?[\"'])?[ \t]*:[ \t]*(?:\\?[\"'])?"
     r"(?P<v>[^\"'\\\r\n]+)"),
    ("password", "mysql", r"\bmysql(?:dump|admin)?\b[^\n|;&]*?(?<=\s)-p"
     r"(?P<v>'[^'\n]*'|\"[^\"\n]*\"|[^\s'\"]+)"),
    ("password", "curl", r"\bcurl\b[^\n|;&]*?(?<![\w-])(?:-u|--user)(?:[ \t]+|=)['\"]?[^\s:'\"]*:"
     r"(?P<v>[^\s'\"]+)"),
)
_QUOTED = r"""\\"(?:[^"\\\n]|\\[^"\n])*\\"|"(?:[^"\\\n]|\\.)*"|'[^'\n]*'"""  # "x" 'x' \"x\"
_BARE = r"""[^\s"'`;&|<>(){}\[\]]+"""  # a shell word, stopping at code's brackets
# own: `KEY=v`, `key: v`, `"key": "v"`, `--key=v`, `key: str = "v"`, `key := "v"`
_ASSIGN = (r"(?<![\w.$-])(?P<name>-{0,2}[A-Za-z_][\w.-]*)(?:\\?[\"'])?[ \t]*"
           r"(?::[ \t]*[A-Za-z_][\w\[\],.| ]*?[ \t]*=(?![=>~])|:=|=(?![=>~])|:(?![:/\\]))"
           rf"[ \t]*(?P<value>{_QUOTED}|{_BARE})")
_FLAG = rf"(?<![\w-])(?P<name>--?[A-Za-z][\w-]*)[ \t]+(?P<value>{_QUOTED}|{_BARE})"  # own
_NAME_HINT = re.compile(r"pass|pwd|secret|token|key|auth|credential|cookie", re.IGNORECASE)
_CODE_WORDS = frozenset({"none", "null", "nil", "true", "false", "undefined", "str", "string",
                         "bytes", "int", "number", "bool", "boolean", "any", "unknown", "object",
                         "optional", "secretstr", "self", "this"})
_STRING_PREFIXES = frozenset({"f", "r", "b", "u", "rb", "br", "fr", "rf"})
_IDENT = re.compile(r"[A-Za-z_]+(?:\.[A-Za-z_]\w*)*")
_TOKEN_TAIL = re.compile(r"[A-Za-z0-9_-]*")
_JWT_TAIL = re.compile(r"[A-Za-z0-9_\-+/=]*")  # the signature, which the JWT regex leaves out
_TOKEN_LEAD = re.compile(r"[\s\"'=:]*(?:[A-Za-z]+=)?")  # Artifactory's `\s`, Azure's `AccountKey=`
_HEX = re.compile(r"[0-9a-fA-F]+")
_SRI = re.compile(r"sha(?:1|256|384|512)-")
_PATH_PART = re.compile(r"[a-z0-9]+(?:[_.-][a-z0-9]+)*|[A-Z]?[a-z]+(?:[A-Z][a-z]+)*")

# -- finders: each yields (start, end, kind) -----------------------------------------------------


def _plugin_finder(
    pattern: re.Pattern[str], kind: str, grouped: bool, valid: Callable[[str], bool] | None,
) -> Finder:
    """Spans of one plugin regex. We run its `denylist` with `finditer`: `analyze_string`
    gives values without positions and, for a regex with a tag group like GitHub's
    `(ghp|gho|...)_...`, only the tag ("ghp"). A token match is extended over the token
    characters that follow: the JWT regex stops before the signature, fixed-length ones early."""
    tail = _JWT_TAIL if kind == "jwt" else _TOKEN_TAIL

    def find(text: str) -> Iterator[Span]:
        for m in pattern.finditer(text):
            if valid is not None and not valid(m.group()):
                continue
            if grouped and pattern.groups:
                start, end = m.span(1)
            else:
                start = m.start() + _TOKEN_LEAD.match(m.group()).end()  # type: ignore[union-attr]
                end = tail.match(text, m.end()).end()  # type: ignore[union-attr]
                while end > start and text[end - 1] in " \t\r\n\"'":
                    end -= 1
            if end > start:
                yield start, end, kind

    return find


def _regex_finder(kind: str, trigger: str, pattern: str) -> Finder:
    regex = re.compile(pattern)

    def find(text: str) -> Iterator[Span]:
        if trigger not in text.lower():
            return
        for m in regex.finditer(text):
            if "v" not in regex.groupindex:
                yield m.start(), _TOKEN_TAIL.match(text, m.end()).end(), kind  # type: ignore[union-attr]
            elif not _placeholder(m.group("v"), text[m.end("v") : m.end("v") + 1]) and (
                _valid_special(kind, m.group("v"))
            ):
                yield m.start("v"), m.end("v"), _special_kind(kind, m)

    return find


def _placeholder(value: str, after: str) -> bool:
    """`$TOKEN`, `${TOKEN}`, `{token}`, `<token>` or the `f` of `f"Bearer {token}"`."""
    return value[0] in "${<%" or (after in ('"', "'") and value.lower() in _STRING_PREFIXES)


def _valid_special(kind: str, value: str) -> bool:
    if kind != "basic-auth":
        return True
    import base64
    import binascii

    try:  # "Basic authentication" in prose is no header: a value decodes to user:password
        return b":" in base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False


def _special_kind(kind: str, m: re.Match[str]) -> str:
    if kind != "authorization":
        return kind
    scheme = (m.group("s") or "").lower()
    if scheme == "basic":
        return "basic-auth"
    return "bearer-token" if scheme in ("", "bearer", "token") and " " not in m.group("v") else kind


def _private_key_finder() -> Finder:
    """Whole key blocks. PrivateKeyDetector's patterns find the header (`BEGIN RSA PRIVATE KEY`,
    `PuTTY-User-Key-File-2`, ...). Own: the span runs over the base64 and `Name: value` lines
    that follow, through the END line; a truncated key ends where its lines do. A bare mention
    (`if "BEGIN RSA PRIVATE KEY" in pem`) is not a key."""
    from detect_secrets.plugins.private_key import PrivateKeyDetector

    headers = [p.pattern for p in PrivateKeyDetector.denylist]
    anchor = re.compile("|".join([*headers, r"BEGIN [A-Z0-9 ]*PRIVATE KEY"]))
    end_line = re.compile(r"-{4,5} ?END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)? ?-{4,5}|Private-MAC: *\w*")
    body_line = re.compile(r"\n[ \t]*(?:[A-Za-z0-9+/=]+|[A-Za-z-]+: [^\n]*)?[ \t]*(?=\n|$)")

    def find(text: str) -> Iterator[Span]:
        pos = 0
        for m in anchor.finditer(text):
            dashes = text[max(0, m.start() - 5) : m.start()]
            putty = m.group().startswith("PuTTY")
            if m.start() < pos or not (putty or dashes.endswith(("-----", "---- "))):
                continue
            start = m.start() - (len(dashes) - len(dashes.rstrip("- ")))
            pos = _line_end(text, m.end())
            while (body := body_line.match(text, pos)) and body.end() > pos:
                pos = body.end()
            end = end_line.search(text, m.end(), _line_end(text, pos + 1))
            pos = end.end() if end is not None else pos
            yield start, pos, "private-key"

    return find


def _line_end(text: str, pos: int) -> int:
    end = text.find("\n", pos)
    return len(text) if end < 0 else end


def _named_value_finder(pattern: str, flag: bool) -> Finder:
    """Own: values whose name says secret, in shell, dotenv, YAML, JSON, code and CLI flags.
    A rejected name's value is scanned again, so `CMD="DB_PASSWORD=x ..."` is still caught."""
    regex = re.compile(pattern)

    def find(text: str) -> Iterator[Span]:
        pos = 0
        while (m := regex.search(text, pos)) is not None:
            name, value = m.group("name"), m.group("value")
            kind = secret_kind(name) if _NAME_HINT.search(name) else None
            if flag and name.lstrip("-").lower().startswith("no-"):
                kind = None
            if kind in (None, "authorization") or not _is_literal(name, m, text, flag):
                pos = m.end("name")
                continue
            start, end = m.span("value")
            if value[0] in "\"'\\":
                quote = 2 if value[0] == "\\" else 1
                start, end = start + quote, end - quote
            else:
                while end > start and text[end - 1] in ",.":
                    end -= 1
            if end > start:
                yield start, end, kind or "secret"
            pos = m.end()

    return find


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
    if nxt in ("(", "[") or (nxt in ("'", '"') and value.lower() in _STRING_PREFIXES):
        return False  # a call, an index, the `f` of `f"..."`
    if name.isupper():
        return True  # an environment variable: any word is its value
    if value.lower() in _CODE_WORDS or value.lower() in name.lower():
        return False
    if _IDENT.fullmatch(value) and ("." in value or "_" in value):
        return False
    sep = text[m.end("name") : m.start("value")]
    return not (":" in sep and value[0].isupper() and value.isalpha())  # `token: Secret`


def _keyword_finder() -> Finder:
    """detect-secrets' KeywordDetector rules (`password = "x"`, `"x" == secret`, ...), in the
    quotes-required set it uses for unknown file types. Run per line as the plugin does (its
    value pattern would run across newlines), and only on lines with a keyword and a quote."""
    from detect_secrets.plugins import keyword

    rules = list(keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP.items())
    needles = ("key", "pass", "pwd", "secret", "contrase")  # every DENYLIST word holds one

    def find(text: str) -> Iterator[Span]:
        start = 0
        for raw in text.split("\n"):
            end, line = start + len(raw), raw.lower()  # lower() may change the length
            if ('"' in line or "'" in line or "`" in line) and any(n in line for n in needles):
                kind = "password" if "pass" in line or "pwd" in line else "secret"
                for regex, group in rules:
                    for m in regex.finditer(text, start, end):
                        yield m.start(group), m.end(group), kind
            start = end + 1

    return find


def _entropy_finder() -> Finder:
    """detect-secrets' high-entropy plugins on quoted strings (as they scan, to keep noise down)
    at their default limits, 4.5 bits for base64 and 3.0 for hex. Own filters keep digests and
    paths readable: hex needs 32+ characters and is never 40 or 64 long (git SHA-1, SHA-256);
    base64 needs 20+ characters with digits and letters, and is not an integrity hash
    (`sha512-...`) nor a path of plain words (`src/components/UserCard`)."""
    from detect_secrets.plugins.high_entropy_strings import (
        Base64HighEntropyString,
        HexHighEntropyString,
    )

    hexa, b64 = HexHighEntropyString(), Base64HighEntropyString()

    def find(text: str) -> Iterator[Span]:
        for m in b64.regex.finditer(text):
            value = m.group(2)
            plugin: Any = b64
            if _HEX.fullmatch(value):
                if len(value) < 32 or len(value) in (40, 64):
                    continue
                plugin = hexa
            elif _looks_harmless(value):
                continue
            if plugin.calculate_shannon_entropy(value) > plugin.entropy_limit:
                yield m.start(2), m.end(2), "high-entropy"

    return find


def _looks_harmless(value: str) -> bool:
    if len(value) < 20 or not any(c.isdigit() for c in value):
        return True
    if not any(c.isalpha() for c in value) or _SRI.match(value):
        return True
    return "/" in value and all(_PATH_PART.fullmatch(p) for p in value.split("/") if p)


@functools.lru_cache(maxsize=1)
def _finders() -> tuple[Finder, ...]:
    """All finders, most specific first: where spans overlap, the first names the kind.
    Built on first use, once per process: importing detect-secrets takes about 150 ms."""
    import importlib

    plugins = []
    for module, name, kinds, grouped in _PLUGINS:
        cls = getattr(importlib.import_module(f"detect_secrets.plugins.{module}"), name)
        valid = getattr(cls, "is_formally_valid", None)  # the JWT plugin's structure check
        for i, pattern in enumerate(cls.denylist):
            plugins.append(_plugin_finder(pattern, kinds[min(i, len(kinds) - 1)], grouped, valid))
    return (
        _private_key_finder(),
        *plugins,
        *(_regex_finder(*rule) for rule in _OWN_TOKENS),
        *(_regex_finder(*rule) for rule in _OWN_SPANS),
        _named_value_finder(_ASSIGN, flag=False),
        _named_value_finder(_FLAG, flag=True),
        _keyword_finder(),
        _entropy_finder(),
    )


# -- redaction --------------------------------------------------------------------------------


def _redact_once(text: str) -> str:
    """One scan. Markers already in the text stay as they are (a span is cut around them);
    overlapping spans become one marker for their union, so no part of a secret survives."""
    marks = [m.span() for m in MARKER.finditer(text)]
    mark_ends = [end for _, end in marks]
    spans: list[tuple[int, int, int, str]] = []
    for rank, finder in enumerate(_finders()):
        for start, end, kind in finder(text):
            i = bisect.bisect_right(mark_ends, start)  # the first marker ending after start
            if i == len(marks) or marks[i][0] >= end:
                if end > start:
                    spans.append((start, end, rank, kind))
                continue
            while i < len(marks) and marks[i][0] < end:  # keep the pieces that hold a word
                if _has_alnum(text, start, marks[i][0]):
                    spans.append((start, marks[i][0], rank, kind))
                start = max(start, marks[i][1])
                i += 1
            if _has_alnum(text, start, end):
                spans.append((start, end, rank, kind))
    if not spans:
        return text
    spans.sort()
    out: list[str] = []
    pos = 0
    cur_start, cur_end, cur_rank, cur_kind = spans[0]
    for start, end, rank, kind in [*spans[1:], (len(text) + 1, 0, 0, "")]:
        if start < cur_end:
            if rank < cur_rank:
                cur_rank, cur_kind = rank, kind
            cur_end = max(cur_end, end)
            continue
        out += [text[pos:cur_start], f"[REDACTED:{cur_kind}]"]
        pos = cur_end
        cur_start, cur_end, cur_rank, cur_kind = start, end, rank, kind
    out.append(text[pos:])
    return "".join(out)


def _has_alnum(text: str, start: int, end: int) -> bool:
    return any(c.isalnum() for c in text[start:end])


def redact_text(text: str) -> str:
    """`text` with each secret found replaced by `[REDACTED:<kind>]`; never raises.

    Scans again until nothing changes (one pass when nothing is found, usually two otherwise),
    so the result is a fixed point. On an internal error the whole text is withheld.
    """
    try:
        if not isinstance(text, str):
            text = str(text)
        for _ in range(_MAX_PASSES):
            redacted = _redact_once(text)
            if redacted == text:
                break
            text = redacted
        return text
    except Exception:
        return FAILED


def redact(value: Any) -> Any:
    """A copy of JSON-like `value` with every string redacted, and each non-empty string under
    a secret-named key (`password`, `GITHUB_TOKEN`, `apiKey`, `Authorization`, ...) replaced
    whole. Tuples become lists; other values come back as they are. Never raises."""
    try:
        return _redact_value(value, 0)
    except Exception:
        return FAILED


def _redact_value(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        return TOO_DEEP
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                out[key] = _redact_value(item, depth + 1)
                continue
            new_key = redact_text(key)
            kind = secret_kind(key) or secret_kind(new_key)
            if kind and isinstance(item, str) and item and not MARKER.fullmatch(item):
                out[new_key] = f"[REDACTED:{kind}]"
            else:
                out[new_key] = _redact_value(item, depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_redact_value(item, depth + 1) for item in value]
    return value
