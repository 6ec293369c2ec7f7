"""Secret redaction: each kind of secret is replaced and the text around it kept, ordinary agent
commands and code pass unchanged, and no input makes it raise or leak a planted secret."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.conftest import REPO, SAMPLES
from watchdog import redact as redact_module
from watchdog.redact import FAILED, TOO_DEEP, redact, redact_text, secret_kind
from watchdog.secret_names import is_placeholder


def fake(*parts: str) -> str:
    """A made-up credential, assembled at run time so that secret scanners leave this file be."""
    return "".join(parts)


def b64url(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


AKIA = fake("AKIA", "Q3ZK7PLWM7RTV42X")
AWS_SECRET = fake("wJalrXUtnFEMI/K7MDENG", "/bPxRfiCYFAKEKEY420")
GHP = fake("ghp", "_Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa")
GHO = fake("gho", "_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAB7c")
GITHUB_PAT = fake("github_pat_", "11FAKE0123456789_", "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAB7c" * 2)
GLPAT = fake("glpat", "-aB3dE5fG7hJ9kL1mN3pQ")
SLACK = fake("xoxb", "-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx")
STRIPE = fake("sk_live", "_4eC39HqLyjWDarjtT1zdp7dc")
OPENAI = fake("sk-proj", "-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAB7cDe0fGh3iJk6lMn9oPq2rSt5uVw")
OPENAI_LEGACY = fake("sk-", "Ab3dEf6hIj9kLm2nOp5q", "T3Blbk", "FJ", "Rs8tUv1wXy4zAB7cDe0f")
ANTHROPIC = fake("sk-ant", "-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa-_Zx9Yw8Vu7Ts6Rq5Po4NAA")
GOOGLE = fake("AIza", "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q")
NPM = fake("npm", "_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAB7c")
HF = fake("hf", "_Fk3jd8Sk2mQ9xL5vR7tB1nW4cZ6hG0pY8aE")
SENDGRID = fake("SG", ".abcdefghijklmnopqrstuv.", "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ")
MAILCHIMP = fake("0123456789abcdef", "0123456789abcdef-us12")
TWILIO = fake("AC", "0123456789abcdef0123456789abcdef")
TELEGRAM = fake("123456789", ":AAFk3jd8Sk2mQ9xL5vR7tB1nW4cZ6hG0pY8")
JWT = ".".join([b64url({"alg": "HS256", "typ": "JWT"}), b64url({"sub": "fake-user-42"}),
                "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"])
PEM_BODY = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw7onLRnrq0/Iz"
RSA_KEY = fake("-----BEGIN RSA PRIV", "ATE KEY-----\n", PEM_BODY, "\n-----END RSA PRIVATE KEY-----")
OPENSSH_KEY = fake("-----BEGIN OPENSSH PRIV", "ATE KEY-----\n", "b3BlbnNzaC1rZXktdjEAAAAA\n",
                   "AAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\n")
HIGH_ENTROPY = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3A="


def R(kind: str) -> str:
    return f"[REDACTED:{kind}]"


POSITIVES = [
    ("aws-access-key", f"aws configure set aws_access_key_id {AKIA}",
     f"aws configure set aws_access_key_id {R('aws-access-key')}"),
    ("aws-secret-ini", f"aws_secret_access_key = {AWS_SECRET}",
     f"aws_secret_access_key = {R('aws-secret-key')}"),
    ("aws-secret-python", f's3 = boto3.client("s3", aws_secret_access_key="{AWS_SECRET}")',
     f's3 = boto3.client("s3", aws_secret_access_key="{R("aws-secret-key")}")'),
    ("github-ghp-in-url", f"git clone https://{GHP}@github.com/o/r.git",
     f"git clone https://{R('github-token')}@github.com/o/r.git"),
    ("github-gho", f"gh auth login --with-token <<< {GHO}",
     f"gh auth login --with-token <<< {R('github-token')}"),
    ("github-pat", f"echo {GITHUB_PAT} | gh auth login",
     f"echo {R('github-token')} | gh auth login"),
    ("gitlab", f'curl -H "PRIVATE-TOKEN: {GLPAT}" https://gitlab.com/api/v4/projects',
     f'curl -H "PRIVATE-TOKEN: {R("gitlab-token")}" https://gitlab.com/api/v4/projects'),
    ("slack", f"slack chat send --token {SLACK} '#ops' hi",
     f"slack chat send --token {R('slack-token')} '#ops' hi"),
    ("stripe", f"stripe charges list --api-key {STRIPE}",
     f"stripe charges list --api-key {R('stripe-key')}"),
    ("openai-project", f'client = OpenAI(api_key="{OPENAI}")',
     f'client = OpenAI(api_key="{R("openai-key")}")'),
    ("openai-legacy", f"curl -s https://api.openai.com -H 'x: {OPENAI_LEGACY}'",
     f"curl -s https://api.openai.com -H 'x: {R('openai-key')}'"),
    ("anthropic", f"client = Anthropic(api_key='{ANTHROPIC}')",
     f"client = Anthropic(api_key='{R('anthropic-key')}')"),
    ("google", f'fetch("https://maps.googleapis.com/x?key={GOOGLE}")',
     f'fetch("https://maps.googleapis.com/x?key={R("google-api-key")}")'),
    ("jwt-bearer", f'curl -H "Authorization: Bearer {JWT}" https://api.x',
     f'curl -H "Authorization: Bearer {R("jwt")}" https://api.x'),
    ("npm-npmrc", f'echo "//registry.npmjs.org/:_authToken={NPM}" > ~/.npmrc',
     f'echo "//registry.npmjs.org/:_authToken={R("npm-token")}" > ~/.npmrc'),
    ("huggingface", f"huggingface-cli login --token {HF}",
     f"huggingface-cli login --token {R('huggingface-token')}"),
    ("sendgrid", f"SENDGRID={SENDGRID}", f"SENDGRID={R('sendgrid-key')}"),
    ("mailchimp", f"mc lists {MAILCHIMP}", f"mc lists {R('mailchimp-key')}"),
    ("twilio", f"twilio api --account-sid {TWILIO}", f"twilio api --account-sid {R('twilio-key')}"),
    ("telegram", f"curl https://api.telegram.org/bot{TELEGRAM}/getMe",
     f"curl https://api.telegram.org/bot{R('telegram-token')}/getMe"),
    ("private-key", f"cat > id_rsa <<EOF\n{RSA_KEY}\nEOF\nchmod 600 id_rsa",
     f"cat > id_rsa <<EOF\n{R('private-key')}\nEOF\nchmod 600 id_rsa"),
    ("private-key-truncated", f"head id_ed25519:\n{OPENSSH_KEY[:70]}",
     f"head id_ed25519:\n{R('private-key')}"),
    ("private-key-json-escaped",
     json.dumps({"type": "service_account", "private_key": RSA_KEY, "client_id": "42"}),
     json.dumps({"type": "service_account", "private_key": R("private-key"), "client_id": "42"})),
    ("url-password", "psql postgres://app:pa55w0rd@db.internal:5432/app",
     f"psql postgres://app:{R('password')}@db.internal:5432/app"),
    ("url-password-sub-delims", "redis-cli -u redis://:hunter2!x@cache:6379/0",
     f"redis-cli -u redis://:{R('password')}@cache:6379/0"),
    ("url-password-unencoded-at", "mongodb+srv://root:p@ss!w0rd@cluster0.example.net/test",
     f"mongodb+srv://root:{R('password')}@cluster0.example.net/test"),
    ("export", "export DB_PASSWORD=hunter2", f"export DB_PASSWORD={R('password')}"),
    ("env-quoted", 'API_KEY="abc" ./run.sh', f'API_KEY="{R("api-key")}" ./run.sh'),
    ("env-inline-before-command", f"GITHUB_TOKEN={GHP} gh pr create --fill",
     f"GITHUB_TOKEN={R('github-token')} gh pr create --fill"),
    ("env-plain-word", "SECRET_TOKEN=hello-world make deploy",
     f"SECRET_TOKEN={R('token')} make deploy"),
    ("env-inside-quoted-command", "sh -c 'DB_PASSWORD=hunter2 ./migrate'",
     f"sh -c 'DB_PASSWORD={R('password')} ./migrate'"),
    ("flag-equals", "mysql -u root --password=hunter2 app",
     f"mysql -u root --password={R('password')} app"),
    ("flag-space", "vault login --token s.AbCdEf123456", f"vault login --token {R('token')}"),
    ("mysql-p-quoted", "mysql -u root -p'hunter2' app", f"mysql -u root -p{R('password')} app"),
    ("mysql-p", "mysqldump -uroot -phunter2 app", f"mysqldump -uroot -p{R('password')} app"),
    ("curl-user", "curl -u admin:s3cr3tP4ss https://api.x", f"curl -u admin:{R('password')} https://api.x"),
    ("bearer", 'curl -H "Authorization: Bearer abc123def456ghi789" https://api.x',
     f'curl -H "Authorization: Bearer {R("bearer-token")}" https://api.x'),
    ("basic", 'curl -H "Authorization: Basic dXNlcjpodW50ZXIy" https://api.x',
     f'curl -H "Authorization: Basic {R("basic-auth")}" https://api.x'),
    ("authorization-json", '{"Authorization": "token abc123def456"}',
     f'{{"Authorization": "token {R("bearer-token")}"}}'),
    ("x-api-key-header", "curl -H 'X-Api-Key: 8fj3Kd9s2Lq' https://api.x",
     f"curl -H 'X-Api-Key: {R('api-key')}' https://api.x"),
    ("cookie", "curl -H 'Cookie: session=abc123; csrftoken=def456' https://x",
     f"curl -H 'Cookie: {R('cookie')}' https://x"),
    ("json-password", '{"password": "hunter2", "user": "bob"}',
     f'{{"password": "{R("password")}", "user": "bob"}}'),
    ("json-escaped-in-curl", 'curl -d "{\\"password\\": \\"hunter2\\"}" https://x',
     f'curl -d "{{\\"password\\": \\"{R("password")}\\"}}" https://x'),
    ("yaml", "db:\n  password: k8s-Pa55word\n  host: db\n",
     f"db:\n  password: {R('password')}\n  host: db\n"),
    ("python-annotated", 'API_TOKEN: str = "tok-123"', f'API_TOKEN: str = "{R("token")}"'),
    ("keyword-detector-prefix-name", 'password_prod = "hunter2"',
     f'password_prod = "{R("password")}"'),
    ("high-entropy-quoted", f'x = "{HIGH_ENTROPY}"', f'x = "{R("high-entropy")}"'),
    ("high-entropy-hex", 'seed = "8f14e45fceea167a5a36dedd4bea2543"',
     f'seed = "{R("high-entropy")}"'),
]


@pytest.mark.parametrize(("text", "expected"), [p[1:] for p in POSITIVES],
                         ids=[p[0] for p in POSITIVES])
def test_secret_is_replaced_and_context_kept(text: str, expected: str) -> None:
    """Only the secret becomes a marker; the command around it reads as before."""
    assert redact_text(text) == expected


PW = fake("Zq8vN3kLp2", "Rt7Wx9")
TOK = fake("b7Hk2mQ9xL5vR7tB", "1nW4cZ6hG0pY8aE3")
# The general classes behind the audit's leaks, in other forms than the corpus's
# (tests/test_redact_corpus.py): id, text, expected.
CLASSES = [
    # credentials given as command arguments
    ("login-password-equals", f"docker login ghcr.io --username bot --password={PW}",
     f"docker login ghcr.io --username bot --password={R('password')}"),
    ("login-short-p", f"helm registry login r.corp.io -u ci -p {PW}",
     f"helm registry login r.corp.io -u ci -p {R('password')}"),
    ("echo-into-password-stdin", f"echo '{PW}' | docker login -u ci --password-stdin ghcr.io",
     f"echo {R('secret')} | docker login -u ci --password-stdin ghcr.io"),
    ("printf-into-with-token", f"printf '%s' {TOK} | gh auth login --with-token",
     f"printf '%s' {R('secret')} | gh auth login --with-token"),
    ("here-string-quoted", f"gh auth login --with-token <<<'{TOK}'",
     f"gh auth login --with-token <<<{R('secret')}"),
    ("curl-u-attached", f"curl -uadmin:{PW} https://x.io",
     f"curl -uadmin:{R('password')} https://x.io"),
    ("curl-proxy-user", f"curl --proxy-user bob:{PW} -x proxy:8080 https://x.io",
     f"curl --proxy-user bob:{R('password')} -x proxy:8080 https://x.io"),
    ("env-command", f"env DB_PASS={PW} ./run", f"env DB_PASS={R('password')} ./run"),
    ("pgpassword", f"PGPASSWORD={PW} psql -h db", f"PGPASSWORD={R('password')} psql -h db"),
    ("aws-configure-profile-first", f"aws configure set --profile prod aws_secret_access_key {TOK}",
     f"aws configure set --profile prod aws_secret_access_key {R('aws-secret-key')}"),
    ("aws-configure-dotted", f"aws configure set default.aws_session_token {TOK}",
     f"aws configure set default.aws_session_token {R('token')}"),
    ("dotnet-user-secrets", f'dotnet user-secrets set "Smtp:Password" "{PW}"',
     f'dotnet user-secrets set "Smtp:Password" "{R("password")}"'),
    ("ldap-w", f"ldapsearch -x -D cn=admin -w {PW} -b dc=corp",
     f"ldapsearch -x -D cn=admin -w {R('password')} -b dc=corp"),
    ("sqlcmd-P", f"sqlcmd -S srv -U sa -P {PW} -Q 'select 1'",
     f"sqlcmd -S srv -U sa -P {R('password')} -Q 'select 1'"),
    ("zip-and-7z", f"zip -P {PW} out.zip f && 7z a -p{PW} out.7z f",
     f"zip -P {R('password')} out.zip f && 7z a -p{R('password')} out.7z f"),
    ("openssl-k", f"openssl enc -aes-256-cbc -k {PW} -in f",
     f"openssl enc -aes-256-cbc -k {R('password')} -in f"),
    ("smbclient-U", f"smbclient //host/share -U bob%{PW}",
     f"smbclient //host/share -U bob%{R('password')}"),
    ("keytool-storepass", f"keytool -importkeystore -srcstorepass {PW} -deststorepass {PW}",
     f"keytool -importkeystore -srcstorepass {R('password')} -deststorepass {R('password')}"),
    # signed and keyed URLs
    ("s3-v2-signature",
     f"https://s3.amazonaws.com/b/k?AWSAccessKeyId={AKIA}&Expires=1&Signature={TOK}%3D",
     f"https://s3.amazonaws.com/b/k?AWSAccessKeyId={R('aws-access-key')}&Expires=1"
     f"&Signature={R('signature')}"),
    ("implicit-flow-fragment", f"https://app.corp.io/cb#access_token={TOK}&token_type=bearer",
     f"https://app.corp.io/cb#access_token={R('token')}&token_type=bearer"),
    ("power-automate-sig",
     "https://prod-00.westus.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke"
     f"?api-version=2016-06-01&sp=%2Ftriggers&sv=1.0&sig={TOK}",
     "https://prod-00.westus.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke"
     f"?api-version=2016-06-01&sp=%2Ftriggers&sv=1.0&sig={R('signature')}"),
    ("trigger-token", f"https://gitlab.corp.io/api/v4/projects/1/trigger?token={TOK}&ref=main",
     f"https://gitlab.corp.io/api/v4/projects/1/trigger?token={R('token')}&ref=main"),
    ("html-escaped-sas", f'<a href="https://x.blob.core.windows.net/f?sv=1&amp;sig={TOK}">f</a>',
     f'<a href="https://x.blob.core.windows.net/f?sv=1&amp;sig={R("signature")}">f</a>'),
    # webhook URLs: the path goes, the host stays
    ("slack-webhook", f"https://hooks.slack.com/services/T0000/B0000/{TOK}",
     f"https://hooks.slack.com/services/{R('slack-webhook')}"),
    ("teams-webhook", f"https://corp.webhook.office.com/webhookb2/a1@b2/IncomingWebhook/{TOK}/c3",
     f"https://corp.webhook.office.com/webhookb2/{R('teams-webhook')}"),
    ("discordapp-webhook", f"https://discordapp.com/api/webhooks/123456789/{TOK}",
     f"https://discordapp.com/api/webhooks/{R('discord-webhook')}"),
    ("generic-hooks", f"https://chat.corp.io/hooks/{TOK}",
     f"https://chat.corp.io/hooks/{R('webhook')}"),
    # userinfo, also in a URL preprocessing turned into a path
    ("userinfo-in-path", f"/repo/https:/user:{PW}@host/path",
     f"/repo/https:/user:{R('password')}@host/path"),
    ("token-as-userinfo", f"git push https://{TOK}@git.corp.io/o/r.git",
     f"git push https://{R('token')}@git.corp.io/o/r.git"),
    ("amqp-userinfo", f"amqp://guest:{PW}@rabbit:5672/",
     f"amqp://guest:{R('password')}@rabbit:5672/"),
    # .env values run to their end, brackets and `;` included
    ("dotenv-separators", f"SMTP_PASSWORD=ab;cd(ef){PW}\nPORT=25",
     f"SMTP_PASSWORD={R('password')}\nPORT=25"),
    ("dotenv-line-in-echo", f"echo 'X_SECRET=(ab)c{PW}' >> .env",
     f"echo 'X_SECRET={R('secret')}' >> .env"),
    # formats
    ("docker-pat", f"docker login -u x -p dckr_pat_{TOK[:27]}",
     f"docker login -u x -p {R('docker-token')}"),
    ("vault-hvs", f"vault login hvs.{TOK}{TOK}", f"vault login {R('vault-token')}"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CLASSES],
                         ids=[c[0] for c in CLASSES])
def test_each_class_of_secret_is_replaced(text: str, expected: str) -> None:
    """Arguments, signed URLs, webhooks, userinfo and `.env` values, by class, not by case."""
    assert redact_text(text) == expected


DOTENV = """# app settings
DEBUG=true
PORT=8080
DATABASE_URL=postgres://app:Sup3rS3cret@db:5432/app
DB_PASSWORD=Sup3rS3cret
STRIPE_SECRET_KEY={stripe}
JWT_SECRET=change-me-please
SECRET_KEY_BASE=9f3c2b1a
AWS_ACCESS_KEY_ID={akia}
AWS_SECRET_ACCESS_KEY={aws}
LOG_LEVEL=info
"""


def test_dotenv_written_by_write_tool() -> None:
    """A `.env` file in a Write's content: secret values go, harmless settings and
    placeholders stay."""
    event = {"tool_name": "Write", "tool_input": {
        "file_path": "/repo/.env",
        "content": DOTENV.format(stripe=STRIPE, akia=AKIA, aws=AWS_SECRET)}}
    content = redact(event)["tool_input"]["content"]
    assert content == DOTENV.format(
        stripe=R("stripe-key"), akia=R("aws-access-key"), aws=R("aws-secret-key"),
    ).replace("Sup3rS3cret@", R("password") + "@").replace(
        "DB_PASSWORD=Sup3rS3cret", f"DB_PASSWORD={R('password')}").replace(
        "9f3c2b1a", R("secret"))  # JWT_SECRET=change-me-please is a placeholder: it stays


PYTHON_SNIPPET = '''\
import os


def login(username: str, password: str) -> Token:
    """Log in; the token is cached for an hour."""
    token = get_token(username, password)
    self.api_key = api_key
    client = OpenAI(api_key=os.environ["OPENAI_API_KEY"])
    secret: SecretStr = settings.secret
    if not token:
        raise ValueError("missing token")
    headers = {"Authorization": f"Bearer {token}", "X-Request-Id": request_id}
    max_tokens = 4096
    return token
'''

NEGATIVES = [
    "git log --oneline -5",
    "rm -rf node_modules",
    "pytest tests/test_x.py::test_y -q",
    "git checkout 3f786850e387550fdab836ed7e6dc881de23001b",
    'git show "3f786850e387550fdab836ed7e6dc881de23001b"',
    '{"session_id": "550e8400-e29b-41d4-a716-446655440000"}',
    'echo "aGVsbG8gd29ybGQ=" | base64 -d',
    'cat "/home/alice/projects/watchdog/tests/fixtures/claude-hook-samples/pre_tool_use"',
    "ls src/components/UserProfileCard/index.tsx",
    'export PATH="$HOME/.local/bin:$PATH"',
    "TOKEN=$(cat ~/.token) ./run.sh",
    'curl -H "Authorization: Bearer $TOKEN" https://api.x',
    "docker run -p 8080:80 -u 1000:1000 nginx",
    "npm install --save-dev @types/node",
    "psql --no-password -h db mydb",
    "We use Basic authentication and a Bearer token here.",
    "See https://example.com/path?q=1 and http://localhost:8080/x",
    'git commit -m "Add password reset flow"',
    'grep -rn "BEGIN RSA PRIVATE KEY" src/',
    '"integrity": "sha512-v2kDEe57lecTulaDIuNTPy3Ry4gLGJ6Z1O3vE1krgXZNrsQ+LFTGHVxVjcXPs817D0Ej6'
    'IYV+3QGqJpK5o3I+Q=="',
    "sha256sum dist/app.tar.gz  # e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    PYTHON_SNIPPET,
]
# Look-alikes: placeholders, documented examples, references, masks, and flags or URLs that
# only resemble the secret classes above.
LOOKALIKES = [
    "export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
    "aws configure set aws_secret_access_key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "STRIPE_KEY=sk_test_xxxxxxxxxxxxxxxxxxxxxxxx",
    '"apiKey": "YOUR_API_KEY"',
    "Authorization: Bearer YOUR_TOKEN_HERE",
    "AWS_SECRET_ACCESS_KEY=<your-secret-key>",
    "SECRET_KEY=${SECRET_KEY}",
    'API_KEY=""',
    "password: ********",
    "token: '...'",
    "secret: ${{ secrets.MY_SECRET }}",
    "echo $TOKEN | docker login -u ci --password-stdin",
    'echo "${{ secrets.TOKEN }}" | docker login --password-stdin',
    'gh auth login --with-token <<< "$GH_TOKEN"',
    "gh auth login --with-token < token.txt",
    "git config --global credential.helper store && git config core.editor vim",
    "aws configure set region us-east-1 && aws configure set output json",
    "npm config set registry https://registry.npmjs.org/",
    "docker compose -p myproj up -d && podman run -p 8080:80 nginx",
    "mkdir -p build/out && cp -p a b && git add -p",
    "mysql -h db -P 3306 -u root -p",
    "redis-cli -h cache -p 6380 ping",
    "unzip -p archive.zip README.md",
    "curl -u admin https://x.io",
    "curl --user-agent 'Mozilla/5.0 (X11; Linux x86_64)' https://x.io",
    "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42s",
    "https://accounts.google.com/o/oauth2/auth?client_id=123.apps.googleusercontent.com"
    "&redirect_uri=http://localhost&response_type=code&scope=email",
    "https://api.github.com/repos/o/r/hooks/12345678/deliveries/98765",
    "https://react.dev/reference/react/hooks",
    "ls ~/.git/hooks/ && cat .husky/pre-commit",
    "const token = await getToken(); const password = input.value;",
    'API_KEY=os.getenv("API_KEY")',
    "image: nginx:1.25@sha256:6af79ae5de407283dcea8b00d5c37ace95441fd58a8b1d2aa1ed93f5511bb18c",
    "scp build.tgz deploy@10.0.0.5:/srv/app/ && git clone git@github.com:org/repo.git",
    'f"  keys: OPENAI_API_KEY={shown}\\n"',
]


@pytest.mark.parametrize("text", LOOKALIKES, ids=lambda t: t[:40])
def test_lookalikes_are_unchanged(text: str) -> None:
    """What only resembles a secret reaches the judge as written."""
    assert redact_text(text) == text


REPEATED = ["sshpass ", "docker login ", "curl - ", "mysql - ", "gh secret set - ", "A=", "?a=",
            "x://a:", "token=%", "--token <<<", "authorization: "]


@pytest.mark.parametrize("unit", REPEATED)
def test_a_line_repeating_a_command_or_a_name_is_scanned_once(unit: str) -> None:
    """A command word, a name or a URL repeated thousands of times on one line (as an attacker
    might, to stall the hook) is read in one pass; each of these took tens of seconds when
    every repetition rescanned the rest of the line."""
    out = redact_text(unit * 5_000)
    assert out != FAILED and redact_text(out) == out


@pytest.mark.parametrize(("value", "expected"), [
    ("your_api_key_here", True), ("xoxb-your-bot-token-here", True), ("<your-token>", True),
    ("change-me", True), ("changeme_please", True), ("dummy", True), ("example", True),
    ("AKIAIOSFODNN7EXAMPLE", True), ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", True),
    ("sk-xxxx", True), ("sk-****abcd", True), ("****", True), ("$API_KEY", True),
    ("${API_KEY:?API_KEY must be set}", True), ("${{ secrets.X }}", True), ("{token}", True),
    ("$(cat ~/.token)", True), ("...", True),
    (PW, False), (TOK, False), ("hunter2", False), ("xxxx1234realpassword", False),
    ("session=abc; csrftoken=xxxx", False), ("Example!2024x", False), (GHP, False),
    ("sk-example-123", True),
])
def test_is_placeholder(value: str, expected: bool) -> None:
    assert is_placeholder(value) is expected


def test_placeholders_under_secret_keys_stay() -> None:
    """A placeholder under a secret-named key is an example, not a credential."""
    data = {"api_key": "your_api_key_here", "password": "change-me", "token": "<your-token>"}
    assert redact(data) == data


@pytest.mark.parametrize("text", NEGATIVES, ids=lambda t: t.splitlines()[0][:40])
def test_ordinary_text_is_unchanged(text: str) -> None:
    """Commands, paths, digests, ids and code the judge needs to read pass untouched."""
    assert redact_text(text) == text


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_claude_hook_samples_pass_unchanged(path: Any) -> None:
    """Real hook payloads (session ids, transcript paths, tool_use ids) hold no secret."""
    payload = json.loads(path.read_text())
    assert redact(payload) == payload


def test_redact_replaces_values_under_secret_keys() -> None:
    """Secret-named keys lose their whole string value, at any depth; the rest is redacted as
    text; the input is not changed in place; tuples become lists."""
    data: dict[str, Any] = {
        "env": {"GITHUB_TOKEN": "plain-looking", "DB_PASSWORD": "", "HOME": "/home/u"},
        "headers": [{"Authorization": "Bearer x"}, {"Cookie": "a=b"}],
        "apiKey": "k", "client_secret": 7, "max_tokens": 4096, "tokenizer": "cl100k",
        "command": f"GH_TOKEN={GHP} gh repo list",
        "args": ("--password", "hunter2"), "ok": True, "none": None, "ratio": 0.5,
    }
    before = json.dumps(data)
    assert redact(data) == {
        "env": {"GITHUB_TOKEN": R("token"), "DB_PASSWORD": "", "HOME": "/home/u"},
        "headers": [{"Authorization": R("authorization")}, {"Cookie": R("cookie")}],
        "apiKey": R("api-key"), "client_secret": 7, "max_tokens": 4096, "tokenizer": "cl100k",
        "command": f"GH_TOKEN={R('github-token')} gh repo list",
        "args": ["--password", "hunter2"], "ok": True, "none": None, "ratio": 0.5,
    }
    assert json.dumps(data) == before


@pytest.mark.parametrize(("name", "kind"), [
    ("password", "password"), ("DB_PASSWORD", "password"), ("passwd", "password"),
    ("GITHUB_TOKEN", "token"), ("accessToken", "token"), ("_authToken", "token"),
    ("api_key", "api-key"), ("apikey", "api-key"), ("X-Api-Key", "api-key"), ("APIKey", "api-key"),
    ("aws_secret_access_key", "aws-secret-key"), ("client_secret", "secret"),
    ("SECRET_KEY_BASE", "secret"), ("private_key", "private-key"), ("Cookie", "cookie"),
    ("Authorization", "authorization"), ("OPENAI_API_KEY2", "api-key"), ("DB_PWD", "password"),
    ("PWD", None), ("max_tokens", None), ("password_file", None), ("author", None),
    ("token_count", None), ("session_id", None), ("key", None), ("sort_key", None),
])
def test_secret_kind_reads_the_last_word(name: str, kind: str | None) -> None:
    assert secret_kind(name) == kind


def test_depth_and_cycles_do_not_raise() -> None:
    """Nesting past MAX_DEPTH is cut off with a marker, which also ends a cycle."""
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    out = redact(cyclic)
    while isinstance(out, list):
        out = out[0]
    assert out == TOO_DEEP


def test_internal_error_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    """If scanning breaks, the text is withheld rather than passed on unredacted."""
    def broken() -> tuple[()]:
        raise RuntimeError("boom")
    monkeypatch.setattr(redact_module, "_finders", broken)
    assert redact_text(f"token {GHP}") == FAILED
    assert redact({"a": "b"}) == {FAILED: FAILED}


def test_detect_secrets_loads_lazily_and_leaves_its_settings_alone() -> None:
    """Importing the module does not load detect-secrets; redacting does not create its global
    settings (we never call `analyze_line`, which reads them)."""
    code = (
        "import sys, watchdog.redact as r\n"
        "assert 'detect_secrets' not in sys.modules\n"
        "assert r.redact_text('x ' + sys.argv[1]) == 'x [REDACTED:github-token]'\n"
        "from detect_secrets.settings import get_settings\n"
        "assert get_settings.cache_info().currsize == 0\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, GHP], cwd=REPO, capture_output=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()


# -- properties ---------------------------------------------------------------------------------

SECRET_KEYS = ["password", "GITHUB_TOKEN", "apiKey"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12) | st.sampled_from(SECRET_KEYS), children, max_size=4),
    max_leaves=20,
)
PLANTS = [  # (snippet, the part that must not survive)
    (GHP, GHP), (AKIA, AKIA), (STRIPE, STRIPE), (ANTHROPIC, ANTHROPIC), (OPENAI, OPENAI),
    (JWT, JWT.rsplit(".", 1)[1]), (SLACK, SLACK), (GOOGLE, GOOGLE), (GLPAT, GLPAT),
    (RSA_KEY, PEM_BODY.splitlines()[0]), ("postgres://app:Pa55w0rd9@db/app", "Pa55w0rd9"),
    ("export DB_PASSWORD=hunter2x9", "hunter2x9"), ('API_KEY="k3y-v4lue"', "k3y-v4lue"),
    ("Authorization: Bearer abc123def456ghi789", "abc123def456ghi789"),
]
# Text around a plant: anything, though a plant is a token or a line, so ends at a separator.
surroundings = st.text(st.characters(codec="utf-8"), max_size=60)
separators = st.sampled_from([" ", "\n", "\t", '"', "'", " | ", "; "])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_any_text_is_redacted_without_error_and_idempotently(text: str) -> None:
    once = redact_text(text)
    assert isinstance(once, str)
    assert redact_text(once) == once


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_stays_json_and_redaction_is_idempotent(value: Any) -> None:
    once = redact(value)
    json.dumps(once)
    assert redact(once) == once


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PLANTS), surroundings, separators, separators, surroundings)
def test_planted_secret_never_survives(
    plant: tuple[str, str], before: str, sep1: str, sep2: str, after: str,
) -> None:
    snippet, sensitive = plant
    assume(sensitive not in before and sensitive not in after)
    out = redact_text(before + sep1 + snippet + sep2 + after)
    assert sensitive not in out
    assert "[REDACTED:" in out
