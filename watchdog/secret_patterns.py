"""Where secrets sit in text: the finders redaction runs, each yielding (start, end, kind) spans.

Token formats, keyword rules and the entropy measure come from detect-secrets' plugins; our own
patterns fill what they lack (marked "own"), by class rather than by case:

* credentials passed as command arguments: `curl -u`, `mysql -pX`, `-p` for the tools where it
  is a password, `gh auth login --with-token <<< X`, `echo X | ... --password-stdin` (flags and
  settings named for a secret are in watchdog/secret_names.py);
* signed and keyed URLs of any provider: `X-Amz-Signature`, `X-Goog-Signature`, Azure's `sig`,
  `token`, `access_token`, `api_key`, `client_secret`, `code`, ... as query parameters;
* webhook URLs: Slack, Discord, Teams, and any `/hooks/<secret>`;
* URL userinfo, also where a URL was turned into a path (`/repo/https:/user:pass@host`, as
  preprocessing's `affected_parent_directories` does).

Built on first use: importing detect-secrets takes about 150 ms, and only an escalated event
is redacted.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from typing import Any

from watchdog.secret_names import ARG, STRING_PREFIXES, Finder, Span, named_finders, secret_kind

__all__ = ["finders"]

# detect-secrets plugins: (module, class, kind of each denylist regex or None to skip it, value
# is in group 1). Left out: Cloudant, SoftLayer and the IBM plugins, assignment regexes for
# retired services that cost a third of the scan; the name rule below catches their
# `..._key = value` forms. Slack's webhook regex spans the whole URL: ours keeps the host.
_PLUGINS: tuple[tuple[str, str, tuple[str | None, ...], bool], ...] = (
    ("aws", "AWSKeyDetector", ("aws-access-key", "aws-secret-key"), True),
    ("github_token", "GitHubTokenDetector", ("github-token",), False),
    ("gitlab_token", "GitLabTokenDetector", ("gitlab-token",), False),
    ("slack", "SlackDetector", ("slack-token", None), False),
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
    ("docker-token", "dckr_", r"dckr_(?:pat|oat)_[A-Za-z0-9_-]{20,}"),
    ("vault-token", "hv", r"(?<![\w.])hv[sbr]\.[A-Za-z0-9_-]{20,}"),
)
_ON_STDIN = r"--?(?:password-stdin|with-token|token-stdin|password-from-stdin)\b"
_PRINT_OPTIONS = r"(?:-[neE]+[ \t]+|['\"]?%s(?:\\n)?['\"]?[ \t]+)?"  # echo -n, printf '%s\n'
# own: secrets known by what surrounds them; group `v` is the value, `s` a header's scheme
_OWN_SPANS = (
    # BasicAuthDetector (also used) stops at `!$&()*+,;=`, which RFC 3986 allows in a password,
    # and wants `://`, which a URL turned into a path has lost (`/repo/https:/u:p@host`).
    ("password", ":/", r"(?i)\b[a-z][a-z0-9+.-]*:/+[^\s:/?#@\"'<>\[\]]*:(?P<v>[^\s/?#\"'<>]+)@"),
    # a token as the whole userinfo (`https://<token>@github.com`): 20+ letters and digits
    ("token", ":/", r"(?i)\b[a-z][a-z0-9+.-]*:/+(?P<v>(?=[^\s:/?#@\"'<>]*\d)"
     r"(?=[^\s:/?#@\"'<>]*[a-z])[^\s:/?#@\"'<>]{20,})@"),
    ("authorization", "authorization",
     r"(?i)(?<![\w-])(?:proxy-)?authorization(?:\\?[\"'])?[ \t]*[:=][ \t]*(?:\\?[\"'])?"
     r"(?:(?P<s>bearer|token|basic|bot|apikey|api-key|sso-key|key|pat)\s+)?(?P<v>(?:digest|oauth"
     r"|aws4-hmac-sha256|hmac[\w-]*|signature|negotiate|ntlm)\s[^\"'\\\r\n]+|[^\s\"'\\,;]+)"),
    ("bearer-token", "bearer", r"(?i)(?<![\w-])bearer\s+(?P<v>(?=[\w.~+/-]*\d)[\w.~+/-]{8,}=*)"),
    ("basic-auth", "basic", r"(?<![\w-])Basic\s+(?P<v>[A-Za-z0-9+/]{8,}={0,2})(?![\w+/=])"),
    ("cookie", "cookie", r"(?i)(?<![\w-])(?:set-)?cookie(?:\\?[\"'])?[ \t]*:[ \t]*(?:\\?[\"'])?"
     r"(?P<v>[^\"'\\\r\n]+)"),
    # a secret piped to a command's stdin: `echo X | cmd --password-stdin` (`<<< X`: below)
    ("secret", ("stdin", "with-token"),
     rf"\b(?:echo|printf)[ \t]+{_PRINT_OPTIONS}(?P<v>{ARG})[ \t]*\|[^\n|;&]*?{_ON_STDIN}"),
    # webhook URLs: the path is the credential; the host stays for the judge
    ("slack-webhook", "hooks.slack.com",
     r"(?i)hooks\.slack\.com/(?:services|workflows|triggers)/(?P<v>[A-Za-z0-9_/-]+)"),
    ("discord-webhook", "webhooks",
     r"(?i)discord(?:app)?\.com/api/(?:v\d+/)?webhooks/\d+/(?P<v>[\w-]+)"),
    ("teams-webhook", "office.com", r"(?i)office\.com/webhook(?:b2)?/(?P<v>[^\s\"'<>?#]+)"),
)
# own: credentials given to a command as arguments: (kind, trigger, the command, the words
# that must follow it, the argument with its value in group `v`); searched once per segment
_USERINFO_ARG = r"""['"]?[^\s:'"]*:(?P<v>[^\s'"]+)"""  # `user:password`
_OWN_ARGUMENTS = (
    ("password", ("mysql", "mariadb"), r"\b(?:mysql\w*|mariadb[\w-]*)\b", None,
     r"(?<=\s)-p(?P<v>'[^'\n]*'|\"[^\"\n]*\"|[^\s'\"]+)"),
    ("password", "curl", r"\bcurl\b", None,
     rf"(?<![\w-])(?:-u|-U|--user|--proxy-user)(?:[ \t]+|=)?{_USERINFO_ARG}"),
    ("password", "-a", r"\b(?:http|https|xh|xhs)[ \t]", None,
     rf"(?<![\w-])(?:-a|--auth)(?:[ \t]+|=){_USERINFO_ARG}"),
    # short flags that take a password, by tool (`docker run -p 80:80` is a port)
    ("password", "login", r"\b(?:docker|podman|nerdctl|buildah|skopeo|oras|helm|crane|cosign)\b",
     r"\blogin\b", rf"(?<=\s)-p(?:[ \t]+|=)(?!-)(?P<v>{ARG})"),
    ("password", "sshpass", r"\bsshpass\b", None, rf"(?<=\s)-p[ \t]*(?!-)(?P<v>{ARG})"),
    ("password", "redis-cli", r"\bredis-cli\b", None, rf"(?<=\s)-a[ \t]+(?!-)(?P<v>{ARG})"),
    ("password", "mongo", r"\bmongo(?:sh|dump|restore|import|export|stat|top)?\b", None,
     rf"(?<=\s)-p[ \t]+(?!-)(?P<v>{ARG})"),
    ("password", "ldap", r"\bldap\w+\b", None, rf"(?<=\s)-w[ \t]+(?!-)(?P<v>{ARG})"),
    ("password", "sqlcmd", r"\bsqlcmd\b", None, rf"(?<=\s)-P[ \t]+(?!-)(?P<v>{ARG})"),
    ("password", "zip", r"\b(?:zip|unzip|zipcloak)\b", None,
     rf"(?<=\s)-P[ \t]+(?!-)(?P<v>{ARG})"),
    ("password", "7z", r"\b7z[ar]?\b", None, rf"(?<=\s)-p(?P<v>{ARG})"),
    ("password", "openssl", r"\bopenssl\b", None, rf"(?<=\s)-k[ \t]+(?!-)(?P<v>{ARG})"),
    ("password", "smbclient", r"\bsmbclient\b", None,
     r"""(?<=\s)(?:-U|--user)(?:[ \t]+|=)['"]?[^\s%'"]+%(?P<v>[^\s'"]+)"""),
    ("secret", "secret", r"\bgh[ \t]+secret[ \t]+set\b", None,
     rf"(?<=\s)(?:-b|--body)(?:[ \t]+|=)(?!-)(?P<v>{ARG})"),
)
# The rest of a command, to the next newline, `|`, `;` or `&` outside quotes.
_SEGMENT = re.compile(r"""(?:'[^'\n]*'|"(?:[^"\\\n]|\\.)*"|[^\n|;&'"]|['"])*""")
_HERE_STRING = re.compile(rf"<<<[ \t]*(?P<v>{ARG})")
_STDIN_FLAG = re.compile(r"(?i)--?[\w-]*(?:token|password|passwd|secret|stdin)")
_LOOK_BACK = 1000  # characters before `<<<` searched for the flag that reads it
_SEPARATORS = "\n|;&"
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


def _regex_finder(kind: str, trigger: str | tuple[str, ...], pattern: str) -> Finder:
    """Spans of one own regex, run only on text that holds its trigger (lower case)."""
    regex = re.compile(pattern)
    triggers = (trigger,) if isinstance(trigger, str) else trigger

    def find(text: str) -> Iterator[Span]:
        lower = text.lower()
        if not any(t in lower for t in triggers):
            return
        for m in regex.finditer(text):
            if "v" not in regex.groupindex:
                yield m.start(), _TOKEN_TAIL.match(text, m.end()).end(), kind  # type: ignore[union-attr]
            elif not _placeholder(m.group("v"), text[m.end("v") : m.end("v") + 1]) and (
                _valid_special(kind, m.group("v"))
            ):
                yield m.start("v"), m.end("v"), _special_kind(kind, m)

    return find


def _command_finder(kind: str, trigger: str | tuple[str, ...], command: str, after: str | None,
                    argument: str) -> Finder:
    """Own: a credential given to `command` (after the words `after`, if any) as an argument.
    Each segment of a command line is searched once, from the command on: a line repeating
    the command thousands of times costs one pass, not one per repetition."""
    cmd, then, arg = re.compile(command), re.compile(after) if after else None, re.compile(argument)
    triggers = (trigger,) if isinstance(trigger, str) else trigger

    def find(text: str) -> Iterator[Span]:
        lower = text.lower()
        if not any(t in lower for t in triggers):
            return
        pos = 0
        while (m := cmd.search(text, pos)) is not None:
            start, end = m.end(), _SEGMENT.match(text, m.end()).end()  # type: ignore[union-attr]
            if then is not None:
                words = then.search(text, start, end)
                start = words.end() if words is not None else end
            for a in arg.finditer(text, start, end):
                if not _placeholder(a.group("v"), text[a.end("v") : a.end("v") + 1]):
                    yield a.start("v"), a.end("v"), kind
            pos = max(end, m.end())

    return find


def _here_string_finder() -> Finder:
    """Own: `gh auth login --with-token <<< X`, `docker login --password-stdin <<< X`: a here-
    string read by a flag named for a secret or for stdin, earlier in the same command."""

    def find(text: str) -> Iterator[Span]:
        if "<<<" not in text:
            return
        for m in _HERE_STRING.finditer(text):
            window = max(0, m.start() - _LOOK_BACK)
            begin = max(text.rfind(c, window, m.start()) for c in _SEPARATORS) + 1 or window
            if _STDIN_FLAG.search(text, begin, m.start()) and not _placeholder(m.group("v"), ""):
                yield m.start("v"), m.end("v"), "secret"

    return find


def _placeholder(value: str, after: str) -> bool:
    """`$TOKEN`, `${TOKEN}`, `{token}`, `<token>` or the `f` of `f"Bearer {token}"`."""
    return value[0] in "${<%" or (after in ('"', "'") and value.lower() in STRING_PREFIXES)


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


_QUERY_PARAM = re.compile(r"(?:[?&]|&amp;)(?P<n>[A-Za-z][\w.-]*)=(?P<v>[^&#\s\"'<>]+)")
_SIGNED_PARAMS = {"sig": "signature", "signature": "signature", "x-amz-signature": "signature",
                  "x-goog-signature": "signature", "x-amz-credential": "credentials",
                  "x-amz-security-token": "token"}
_KEYED_PARAMS = {"code": "auth-code", "key": "api-key"}
_MIN_KEYED_CHARS = 8  # `?code=SKU42`, `?key=size` are no credentials


def _query_finder() -> Finder:
    """Own: credentials in query strings of any provider: signatures of signed URLs (S3's
    `X-Amz-Signature`, GCS's `X-Goog-Signature`, Azure SAS `sig`, CloudFront `Signature`), the
    STS token and access key in `X-Amz-Security-Token` and `X-Amz-Credential`, and keyed
    parameters (`token`, `access_token`, `api_key`, `apikey`, `client_secret`, `code`, `key`)."""

    def find(text: str) -> Iterator[Span]:
        if "=" not in text or ("?" not in text and "&" not in text):
            return
        for m in _QUERY_PARAM.finditer(text):
            name, value = m.group("n").lower(), m.group("v")
            kind = _SIGNED_PARAMS.get(name)
            if kind is None and len(value) >= _MIN_KEYED_CHARS:
                kind = _KEYED_PARAMS.get(name) or secret_kind(m.group("n"))
            if kind is not None and kind != "authorization" and value[0] not in "${<":
                yield m.start("v"), m.end("v"), kind

    return find


_HOOK_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*:/+[^\s/\"'<>]+(?:/[^\s/?#\"'<>]+)*?"
                       r"/(?:hooks|webhooks?)/(?:catch/)?(?P<v>[^\s?#\"'<>]+)")
_HOOK_PATH = re.compile(r"(?i)/(?:hooks|webhooks?)/")
_MIN_HOOK_SEGMENT = 6


def _webhook_finder() -> Finder:
    """Own: the path after `/hooks/`, `/webhook/` or `/webhooks/` in a URL (Mattermost,
    Zapier, n8n, Gitea, ...) when a segment of it looks random (letters and digits, 6 or
    more): `/repos/o/r/hooks/12345678` and `/webhooks/about-webhooks` are not secrets."""

    def find(text: str) -> Iterator[Span]:
        if _HOOK_PATH.search(text) is None:
            return
        for m in _HOOK_URL.finditer(text):
            path = m.group("v").rstrip("/")
            for segment in path.split("/"):
                chars = [c for c in segment if c.isalnum()]
                if (len(chars) >= _MIN_HOOK_SEGMENT and any(c.isdigit() for c in chars)
                        and any(c.isalpha() for c in chars)):
                    yield m.start("v"), m.start("v") + len(path), "webhook"
                    break

    return find


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
def finders() -> tuple[Finder, ...]:
    """All finders, most specific first: where spans overlap, the first names the kind.
    Built on first use, once per process."""
    import importlib

    plugins = []
    for module, name, kinds, grouped in _PLUGINS:
        cls = getattr(importlib.import_module(f"detect_secrets.plugins.{module}"), name)
        valid = getattr(cls, "is_formally_valid", None)  # the JWT plugin's structure check
        for i, pattern in enumerate(cls.denylist):
            kind = kinds[min(i, len(kinds) - 1)]
            if kind is not None:
                plugins.append(_plugin_finder(pattern, kind, grouped, valid))
    return (
        _private_key_finder(),
        *plugins,
        *(_regex_finder(*rule) for rule in _OWN_TOKENS),
        *(_regex_finder(*rule) for rule in _OWN_SPANS),
        *(_command_finder(*rule) for rule in _OWN_ARGUMENTS),
        _here_string_finder(),
        _query_finder(),
        _webhook_finder(),
        *named_finders(),
        _keyword_finder(),
        _entropy_finder(),
    )
