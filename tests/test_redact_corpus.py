"""The redaction corpus, through the real request builder: 36 kinds of secret in the five places
an escalated event carries text (a Bash command, a Write's content, a tool_response, a WebFetch
URL, a user prompt), and look-alikes that must reach the judge unchanged.

Each secret is checked in `json.dumps` of the payload `request.build` makes (what is queued,
logged and sent to the judge) and of `redact(preprocess(raw))` (what Cupcake's watchdog prompt
is built from: preprocessing turns URLs in commands into `affected_parent_directories` paths).
A secret counts as leaked when any 8 characters of it survive, so a value cut short (`.env`
values with a `)`) leaks too. `python -m tests.test_redact_corpus` prints the figures.
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass
from typing import Any

import pytest

from watchdog.config import Settings
from watchdog.decisions import Decision, DecisionObject
from watchdog.escalation import request
from watchdog.harnesses import claude
from watchdog.preprocess import preprocess
from watchdog.redact import redact

ALNUM = string.ascii_letters + string.digits
LOWER_ALNUM = string.ascii_lowercase + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"


def rnd(seed: str, n: int, alphabet: str = ALNUM) -> str:
    """A made-up secret, the same on every run, built at run time so scanners leave this file."""
    gen = random.Random(seed)
    return "".join(gen.choice(alphabet) for _ in range(n))


def guid(seed: str) -> str:
    h = rnd(seed, 32, HEX)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def akia(seed: str) -> str:
    return "AKIA" + rnd(seed, 16, string.ascii_uppercase + "234567")


def jwt(seed: str) -> str:
    return ".".join(["eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", "eyJzdWIiOiJ1c2VyLTQyIn0",
                     rnd(seed, 43, URLSAFE)])


@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    form: str  # bash | write | response | webfetch | prompt
    text: str
    secrets: tuple[str, ...]


def case(id: str, kind: str, form: str, text: str, *secrets: str) -> Case:
    missing = [s for s in secrets if s not in text]
    assert not missing, f"{id}: the secret is not in the text: {missing}"
    return Case(id, kind, form, text, secrets)


S = {name: rnd(name, 40, B64) for name in ("aws1", "aws2", "aws3")}
PW = {name: rnd(name, 14) + "9x" for name in (
    "docker", "podman", "pg1", "pg2", "mysql1", "mysql2", "mysql3", "curl1", "curl2", "http",
    "sshpass", "redis", "mongo", "url1", "url2", "url3", "url4", "url5", "url6", "pwflag1",
    "pwflag2", "wget", "poetry", "mysqlpwd")}
T = {name: rnd(name, 32) for name in (
    "sts", "cf", "token-q", "access-q", "apikey-q", "apikey-q2", "secret-q", "code", "gl",
    "npm-env", "xapi", "bearer1", "bearer2", "bearer3", "apiflag1", "apiflag2", "apiflag3",
    "secflag1", "secflag2", "secflag3", "tokflag1", "tokflag2", "gitcfg", "ghsecret",
    "yarncfg", "session")}
HVS = ["hvs." + rnd(f"hvs{i}", 90, URLSAFE) for i in range(3)]
HVB = "hvb." + rnd("hvb", 120, URLSAFE)
HVR = "hvr." + rnd("hvr", 24, URLSAFE)
DCKR = ["dckr_pat_" + rnd(f"dckr{i}", 27, URLSAFE) for i in range(2)]
GHP = "ghp_" + rnd("ghp", 36)
GHO = "gho_" + rnd("gho", 36)
HEX40 = rnd("hex40", 40, HEX)
DISCORD = [(rnd(f"did{i}", 19, string.digits), rnd(f"dtok{i}", 68, URLSAFE)) for i in range(3)]
SLACK_HOOK = [rnd(f"slack{i}", 24) for i in range(3)]
TEAMS_HEX = [rnd(f"teams{i}", 32, HEX) for i in range(2)]
TEAMS_GUID = [guid(f"tg{i}") for i in range(6)]
MATTERMOST = rnd("mm", 26, LOWER_ALNUM)
ZAPIER = rnd("zap", 7, LOWER_ALNUM)
N8N = guid("n8n")
SIG64 = rnd("s3sig", 64, HEX)
SIG64B = rnd("s3sig2", 64, HEX)
GOOG = rnd("goog", 512, HEX)
SAS = [rnd(f"sas{i}", 32, ALNUM) + "%2B" + rnd(f"sas{i}b", 10) + "%3D" for i in range(2)]
AKIAS = [akia(f"akia{i}") for i in range(5)]
DOTENV_PAREN = ["Xy7)q9!zR(2wLm4", "s3cr3t)" + rnd("dp2", 12), "(" + rnd("dp3", 10) + ")tail42"]
JWTS = [jwt(f"jwt{i}") for i in range(2)]
STRIPE = "sk_live_" + rnd("stripe", 24)
OPENAI = "sk-proj-" + rnd("openai", 48, URLSAFE) + "T3BlbkFJ" + rnd("openai2", 20)
ANTHROPIC = "sk-ant-api03-" + rnd("anthropic", 93, URLSAFE) + "AA"
XOXB = "xoxb-" + rnd("x1", 12, string.digits) + "-" + rnd("x2", 13, string.digits) + "-" + rnd(
    "x3", 24)
NPM = "npm_" + rnd("npm", 36)
NPM_UUID = guid("npm-uuid")
PEM = rnd("pem", 64, B64) + "\n" + rnd("pem2", 64, B64)
RSA = "-----BEGIN RSA PRIV" + "ATE KEY-----\n" + PEM + "\n-----END RSA PRIVATE KEY-----"
OPENSSH = ("-----BEGIN OPENSSH PRIV" + "ATE KEY-----\n" + PEM
           + "\n-----END OPENSSH PRIVATE KEY-----")
GOCSPX = "GOCSPX-" + rnd("gocspx", 28, URLSAFE)
HEX32 = rnd("hex32", 32, HEX)

CASES = [
    # 1 the audit's leak: a positional secret after `aws configure set`
    case("aws-configure-secret", "aws-configure-set", "bash",
         f"aws configure set aws_secret_access_key {S['aws1']}", S["aws1"]),
    case("aws-configure-session", "aws-configure-set", "bash",
         f"aws configure set aws_session_token {T['sts']} --profile prod", T["sts"]),
    case("aws-configure-prompt", "aws-configure-set", "prompt",
         f"please run aws configure set aws_secret_access_key {S['aws2']} and retry", S["aws2"]),
    # 2
    case("aws-access-export", "aws-keys", "bash", f"export AWS_ACCESS_KEY_ID={AKIAS[0]}",
         AKIAS[0]),
    case("aws-credentials-file", "aws-keys", "write",
         f"[default]\naws_access_key_id = {AKIAS[1]}\naws_secret_access_key = {S['aws3']}\n",
         AKIAS[1], S["aws3"]),
    # 3 the audit's leak: presigned S3 URLs
    case("s3-presigned-webfetch", "s3-presigned-url", "webfetch",
         "https://bucket.s3.us-east-1.amazonaws.com/report.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256"
         f"&X-Amz-Credential={AKIAS[2]}%2F20240501%2Fus-east-1%2Fs3%2Faws4_request"
         "&X-Amz-Date=20240501T000000Z&X-Amz-Expires=3600"
         f"&X-Amz-Security-Token={T['sts']}IQoJb3JpZ2luX2VjE"
         f"&X-Amz-SignedHeaders=host&X-Amz-Signature={SIG64}",
         AKIAS[2], T["sts"], SIG64),
    case("s3-presigned-curl", "s3-presigned-url", "bash",
         'curl -fo r.pdf "https://bucket.s3.amazonaws.com/r.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256'
         f'&X-Amz-Credential={AKIAS[3]}%2F20240501%2Fus-east-1%2Fs3%2Faws4_request'
         f'&X-Amz-Date=20240501T000000Z&X-Amz-Expires=60&X-Amz-Signature={SIG64B}"',
         AKIAS[3], SIG64B),
    # 4
    case("gcs-signed", "gcs-signed-url", "webfetch",
         "https://storage.googleapis.com/bkt/obj.tgz?X-Goog-Algorithm=GOOG4-RSA-SHA256"
         "&X-Goog-Credential=ci%40proj.iam.gserviceaccount.com%2F20240501%2Fauto%2Fstorage"
         "%2Fgoog4_request&X-Goog-Date=20240501T000000Z&X-Goog-Expires=900"
         f"&X-Goog-SignedHeaders=host&X-Goog-Signature={GOOG}", GOOG),
    # 5 the audit's leak: Azure SAS
    case("azure-sas-webfetch", "azure-sas", "webfetch",
         "https://acct.blob.core.windows.net/c/f.zip?sv=2022-11-02&ss=b&srt=o&sp=r"
         f"&se=2024-06-01T00:00:00Z&spr=https&sig={SAS[0]}", SAS[0]),
    case("azure-sas-response", "azure-sas", "response",
         "Upload URL:\nhttps://acct.blob.core.windows.net/c/f.zip?sp=racw&st=2024-05-01"
         f"&se=2024-05-02&spr=https&sv=2022-11-02&sr=b&sig={SAS[1]}\n", SAS[1]),
    # 6 signed and keyed URLs of any provider
    case("cloudfront-signed", "signed-url", "webfetch",
         f"https://d111.cloudfront.net/v.mp4?Expires=1700000000&Signature={T['cf']}"
         "&Key-Pair-Id=K2JCJMDEHXQW5F", T["cf"]),
    case("token-query", "signed-url", "bash",
         f"wget 'https://files.internal.io/dl?id=42&token={T['token-q']}' -O out.bin",
         T["token-q"]),
    case("access-token-query", "signed-url", "webfetch",
         f"https://graph.facebook.com/v19.0/me?fields=id&access_token={T['access-q']}",
         T["access-q"]),
    case("api-key-query", "signed-url", "prompt",
         f"why does https://api.weather.io/v1/q?city=Paris&api_key={T['apikey-q']} return 401?",
         T["apikey-q"]),
    case("apikey-query", "signed-url", "bash",
         f"curl 'https://api.x.io/search?apikey={T['apikey-q2']}&q=cats'", T["apikey-q2"]),
    case("client-secret-query", "signed-url", "bash",
         "curl -X POST 'https://oauth2.googleapis.com/token?client_id=123.apps"
         f"&client_secret={GOCSPX}&grant_type=refresh_token'", GOCSPX),
    case("oauth-code-query", "signed-url", "webfetch",
         f"http://localhost:8080/callback?code={T['code']}&state=af0ifjsldkj", T["code"]),
    case("key-query", "signed-url", "webfetch", f"https://api.example.io/v2/items?key={HEX32}",
         HEX32),
    # 7 the audit's leak: Discord webhooks
    case("discord-webhook-curl", "discord-webhook", "bash",
         "curl -X POST -H 'Content-Type: application/json' -d '{\"content\":\"done\"}' "
         f"https://discord.com/api/webhooks/{DISCORD[0][0]}/{DISCORD[0][1]}", DISCORD[0][1]),
    case("discord-webhook-env", "discord-webhook", "write",
         f"DISCORD_WEBHOOK=https://discordapp.com/api/webhooks/{DISCORD[1][0]}/{DISCORD[1][1]}\n",
         DISCORD[1][1]),
    case("discord-webhook-fetch", "discord-webhook", "webfetch",
         f"https://ptb.discord.com/api/v10/webhooks/{DISCORD[2][0]}/{DISCORD[2][1]}?wait=true",
         DISCORD[2][1]),
    # 8
    case("slack-webhook-curl", "slack-webhook", "bash",
         "curl -X POST --data '{\"text\":\"hi\"}' "
         f"https://hooks.slack.com/services/T0AB12CDE/B0FG34HIJ/{SLACK_HOOK[0]}", SLACK_HOOK[0]),
    case("slack-webhook-prompt", "slack-webhook", "prompt",
         f"post the summary to https://hooks.slack.com/services/T01ABCDEF/B02GHIJKL/"
         f"{SLACK_HOOK[1]} when done", SLACK_HOOK[1]),
    case("slack-workflow", "slack-webhook", "write",
         f"url: https://hooks.slack.com/triggers/T0AB12CDE/1234567890/{SLACK_HOOK[2]}\n",
         SLACK_HOOK[2]),
    # 9
    case("teams-webhook", "teams-webhook", "bash",
         "curl -H 'Content-Type: application/json' -d @card.json "
         f"https://contoso.webhook.office.com/webhookb2/{TEAMS_GUID[0]}@{TEAMS_GUID[1]}"
         f"/IncomingWebhook/{TEAMS_HEX[0]}/{TEAMS_GUID[2]}", TEAMS_HEX[0], TEAMS_GUID[2]),
    case("teams-webhook-legacy", "teams-webhook", "write",
         f"TEAMS_URL = \"https://outlook.office.com/webhook/{TEAMS_GUID[3]}@{TEAMS_GUID[4]}"
         f"/IncomingWebhook/{TEAMS_HEX[1]}/{TEAMS_GUID[5]}\"\n", TEAMS_HEX[1], TEAMS_GUID[5]),
    # 10 generic /hooks/<secret>
    case("mattermost-hook", "generic-webhook", "bash",
         "curl -i -X POST -d 'payload={\"text\": \"hi\"}' "
         f"https://chat.corp.io/hooks/{MATTERMOST}",
         MATTERMOST),
    case("zapier-hook", "generic-webhook", "webfetch",
         f"https://hooks.zapier.com/hooks/catch/1234567/{ZAPIER}9/", ZAPIER),
    case("n8n-webhook", "generic-webhook", "prompt",
         f"the form posts to https://n8n.corp.io/webhook/{N8N} now", N8N),
    # 11 the audit's leak: Docker Hub PATs
    case("docker-pat-login", "docker-pat", "bash", f"docker login -u x -p {DCKR[0]}", DCKR[0]),
    case("docker-pat-stdin", "docker-pat", "response",
         f"$ echo {DCKR[1]} | docker login -u ci --password-stdin\nLogin Succeeded\n", DCKR[1]),
    # 12 registry logins with a plain password
    case("docker-login-p", "registry-login", "bash",
         f"docker login registry.corp.io -u ci -p {PW['docker']}", PW["docker"]),
    case("podman-login-password", "registry-login", "bash",
         f"podman login quay.io --username bot --password {PW['podman']}", PW["podman"]),
    # 13 the audit's leak: Vault service tokens
    case("vault-login", "vault-token", "bash", f"vault login {HVS[0]}", HVS[0]),
    case("vault-token-create", "vault-token", "response",
         f"Key                  Value\n---                  -----\ntoken                {HVS[1]}\n"
         "token_accessor       8609694a-cdbc-db9b-d345-e782dbb562ed\ntoken_duration       768h\n",
         HVS[1]),
    case("vault-header", "vault-token", "bash",
         f"curl -s -H 'X-Vault-Request: true' https://vault:8200/v1/kv/app?t={HVS[2]}", HVS[2]),
    # 14
    case("vault-batch", "vault-batch-recovery", "prompt", f"the CI batch token is {HVB}", HVB),
    case("vault-recovery", "vault-batch-recovery", "write", f"recovery: {HVR}\n", HVR),
    # 15 the audit's leak: a .env value with a bracket
    case("dotenv-paren-write", "dotenv-bracket", "write",
         f"DEBUG=false\nDB_PASSWORD={DOTENV_PAREN[0]}\nPORT=8080\n", DOTENV_PAREN[0]),
    case("dotenv-paren-response", "dotenv-bracket", "response",
         f"API_SECRET={DOTENV_PAREN[1]}\nLOG_LEVEL=info\n", DOTENV_PAREN[1]),
    case("dotenv-paren-echo", "dotenv-bracket", "bash",
         f"echo 'SMTP_PASSWORD={DOTENV_PAREN[2]}' >> .env", DOTENV_PAREN[2]),
    # 16 the audit's leak: userinfo that preprocessing turns into a path
    case("url-userinfo-dir", "url-userinfo-path", "bash",
         f"curl -fsSL https://deploy:{PW['url1']}@artifacts.corp.io/releases/ -o index.html",
         PW["url1"]),
    case("git-clone-userinfo", "url-userinfo-path", "bash",
         f"git clone https://bot:{PW['url2']}@git.corp.io/org/repo.git ./repo/", PW["url2"]),
    case("pip-index-userinfo", "url-userinfo-path", "bash",
         f"pip install --index-url https://u:{PW['url3']}@pypi.corp.io/simple/ pkg", PW["url3"]),
    # 17
    case("database-url-write", "url-password", "write",
         f"DATABASE_URL=postgresql://app:{PW['url4']}@db:5432/app\n", PW["url4"]),
    case("url-password-fetch", "url-password", "webfetch",
         f"https://admin:{PW['url5']}@status.corp.io/health", PW["url5"]),
    case("url-password-prompt", "url-password", "prompt",
         f"connect with mongodb+srv://root:{PW['url6']}@cluster0.mongodb.net/test", PW["url6"]),
    # 18
    case("github-token-prompt", "github-token", "prompt", f"my token is {GHP}, push it", GHP),
    case("github-token-response", "github-token", "response", f"{GHO}\n", GHO),
    # 19
    case("gh-with-token", "gh-with-token", "bash",
         f"gh auth login --with-token <<< {HEX40}", HEX40),
    # 20
    case("curl-u", "curl-user", "bash", f"curl -u deploy:{PW['curl1']} https://api.corp.io",
         PW["curl1"]),
    case("curl-user-quoted", "curl-user", "bash",
         f"curl --user 'ci:{PW['curl2']}' https://api.corp.io/v1", PW["curl2"]),
    case("httpie-auth", "curl-user", "bash",
         f"http -a admin:{PW['http']} POST https://api.corp.io/items", PW["http"]),
    # 21
    case("mysql-p", "mysql-p", "bash", f"mysql -uroot -p{PW['mysql1']} -e 'show databases'",
         PW["mysql1"]),
    case("mysqldump-p-quoted", "mysql-p", "bash",
         f"mysqldump -u app -p'{PW['mysql2']}' app > dump.sql", PW["mysql2"]),
    case("mariadb-p", "mysql-p", "prompt", f"try mariadb -h db -p{PW['mysql3']} app", PW["mysql3"]),
    # 22
    case("pgpassword", "password-env", "bash",
         f"PGPASSWORD={PW['pg1']} psql -h db -U app -c 'select 1'", PW["pg1"]),
    case("pgpassword-quoted", "password-env", "bash",
         f"PGPASSWORD='{PW['pg2']}' pg_dump -h db app > app.sql", PW["pg2"]),
    case("mysql-pwd", "password-env", "bash", f"MYSQL_PWD={PW['mysqlpwd']} mysql -u app",
         PW["mysqlpwd"]),
    # 23
    case("export-gitlab-token", "export-token", "bash", f"export GITLAB_TOKEN={T['gl']}", T["gl"]),
    case("export-npm-token", "export-token", "write",
         f"#!/bin/sh\nexport NPM_TOKEN={T['npm-env']}\nnpm publish\n", T["npm-env"]),
    case("export-x-token", "export-token", "response",
         f"declare -x X_API_TOKEN=\"{T['xapi']}\"\n", T["xapi"]),
    # 24
    case("bearer-curl", "bearer-header", "bash",
         f'curl -H "Authorization: Bearer {T["bearer1"]}" https://api.corp.io', T["bearer1"]),
    case("token-header-wget", "bearer-header", "bash",
         f"wget --header='authorization: token {T['bearer2']}' https://api.corp.io",
         T["bearer2"]),
    case("bearer-response", "bearer-header", "response",
         f"> GET /v1 HTTP/1.1\n> Authorization: Bearer {T['bearer3']}\n< HTTP/1.1 200 OK\n",
         T["bearer3"]),
    # 25
    case("api-key-flag", "api-key-flag", "bash", f"stripe charges list --api-key {T['apiflag1']}",
         T["apiflag1"]),
    case("api-key-flag-equals", "api-key-flag", "bash",
         f"llm -m gpt-4o --api-key={T['apiflag2']} 'hi'", T["apiflag2"]),
    case("apikey-flag", "api-key-flag", "prompt", f"use mycli --apikey {T['apiflag3']} for it",
         T["apiflag3"]),
    # 26
    case("secret-flag", "secret-flag", "bash", f"tool deploy --secret {T['secflag1']}",
         T["secflag1"]),
    case("client-secret-flag", "secret-flag", "bash",
         f"az login --service-principal -u app --client-secret={T['secflag2']} --tenant t",
         T["secflag2"]),
    case("secret-key-flag", "secret-flag", "bash",
         f"mc alias set s3 https://s3.corp.io --access-key ci --secret-key {T['secflag3']}",
         T["secflag3"]),
    # 27
    case("password-flag", "password-flag", "bash",
         f"psql-wrapper --host db --password {PW['pwflag1']}", PW["pwflag1"]),
    case("password-flag-equals", "password-flag", "bash",
         f"mysql -u root --password={PW['pwflag2']} app", PW["pwflag2"]),
    case("wget-http-password", "password-flag", "bash",
         f"wget --http-user=ci --http-password={PW['wget']} https://files.corp.io/a.tgz",
         PW["wget"]),
    # 28 short flags that take a password, by tool
    case("sshpass-p", "short-password-flag", "bash",
         f"sshpass -p '{PW['sshpass']}' ssh deploy@host uptime", PW["sshpass"]),
    case("redis-cli-a", "short-password-flag", "bash",
         f"redis-cli -h cache -a {PW['redis']} ping", PW["redis"]),
    case("mongosh-p", "short-password-flag", "bash",
         f"mongosh mongodb://db:27017 -u admin -p {PW['mongo']} --eval 'db.stats()'",
         PW["mongo"]),
    # 29
    case("token-flag", "token-flag", "bash", f"terraform login --token {T['tokflag1']}",
         T["tokflag1"]),
    case("auth-token-flag", "token-flag", "bash",
         f"sentry-cli --auth-token {T['tokflag2']} releases new 1.0", T["tokflag2"]),
    case("session-flag", "token-flag", "prompt",
         f"run it as: cli --session-token={T['session']}", T["session"]),
    # 30
    case("jwt-response", "jwt", "response", f'{{"access_token": "{JWTS[0]}", "expires_in": 3600}}',
         JWTS[0]),
    case("jwt-prompt", "jwt", "prompt", f"decode this one: {JWTS[1]}", JWTS[1]),
    # 31
    case("private-key-write", "private-key", "write", RSA + "\n",
         PEM.splitlines()[0], PEM.splitlines()[1]),
    case("private-key-response", "private-key", "response", OPENSSH + "\n",
         PEM.splitlines()[0], PEM.splitlines()[1]),
    # 32
    case("stripe-config", "stripe-key", "write", f"stripe:\n  key: {STRIPE}\n", STRIPE),
    # 33
    case("openai-prompt", "llm-provider-key", "prompt", f"use {OPENAI} for the eval", OPENAI),
    case("anthropic-env", "llm-provider-key", "write", f"ANTHROPIC_API_KEY={ANTHROPIC}\n",
         ANTHROPIC),
    # 34
    case("slack-token", "slack-token", "bash",
         f"curl -F channel=C1 -F text=hi -F token={XOXB} https://slack.com/api/chat.postMessage",
         XOXB),
    # 35
    case("npmrc", "npm-token", "write", f"//registry.npmjs.org/:_authToken={NPM}\n", NPM),
    case("npm-config-set", "npm-token", "bash",
         f"npm config set //registry.npmjs.org/:_authToken {NPM_UUID}", NPM_UUID),
    # 36 settings commands that take a secret as a positional value
    case("git-config-token", "config-set", "bash",
         f"git config --global github.token {T['gitcfg']}", T["gitcfg"]),
    case("gh-secret-set", "config-set", "bash",
         f"gh secret set DEPLOY_KEY --body {T['ghsecret']}", T["ghsecret"]),
    case("yarn-config-set", "config-set", "bash",
         f"yarn config set npmAuthToken {T['yarncfg']}", T["yarncfg"]),
    case("poetry-http-basic", "config-set", "bash",
         f"poetry config http-basic.corp ci {PW['poetry']}", PW["poetry"]),
]

LOOKALIKES = [  # (id, form, text): placeholders, documented examples, references, masks, ports
    ("aws-doc-access-key", "bash", "export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE"),
    ("aws-doc-secret", "bash",
     "aws configure set aws_secret_access_key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("slack-placeholder", "write", "SLACK_BOT_TOKEN=xoxb-your-bot-token-here\n"),
    ("openai-placeholder", "write", "OPENAI_API_KEY=sk-xxxx\n"),
    ("required-env", "bash", ': "${API_KEY:?API_KEY must be set}" && ./run.sh'),
    ("env-reference", "bash", 'curl -H "Authorization: Bearer $API_KEY" https://api.corp.io'),
    ("actions-secret", "write",
     "steps:\n  - run: ./deploy.sh\n    env:\n      token: ${{ secrets.DEPLOY_TOKEN }}\n"),
    ("masked-key", "response", 'api_key = "sk-****abcd"\n'),
    ("masked-stars", "response", "PASSWORD=****\n"),
    ("change-me", "write", "JWT_SECRET=change-me\n"),
    ("angle-placeholder", "bash", "curl -H 'X-Api-Key: <your-token>' https://api.corp.io"),
    ("your-key-here", "write", "API_KEY=your_api_key_here\n"),
    ("dummy", "write", "database:\n  password: dummy\n"),
    ("example", "write", "auth:\n  secret: example\n"),
    ("docker-port", "bash", "docker run -p 8080:80 -e MODE=dev nginx"),
    ("ssh-port", "bash", "ssh -p 2222 deploy@host 'git log -p -1'"),
    ("hooks-paths", "bash", "cat .git/hooks/pre-commit && ls src/hooks/useAuth.ts"),
    ("github-hook-api", "webfetch", "https://api.github.com/repos/o/r/hooks/12345678"),
    ("docs-webhooks", "webfetch", "https://docs.github.com/en/webhooks/about-webhooks?tab=x"),
    ("image-digest", "bash",
     f"docker pull python:3.12-slim@sha256:{rnd('digest', 64, HEX)} && git clone "
     "git@github.com:org/repo.git"),
    ("mysql-prompt", "bash", "mysql -u root -p mydb < schema.sql"),
    ("pgpassword-from-file", "bash", "PGPASSWORD=$(cat ~/.pgpass_app) psql -h db app"),
    ("short-query-values", "webfetch",
     "https://shop.corp.io/list?category=keys&sort=price&code=SKU42&page=2"),
    ("with-token-stdin", "bash", 'gh auth login --with-token < ~/.config/gh-token'),
]

SETTINGS = Settings()
MANIFEST = {"content_hash": "corpus"}
DECISION = Decision("allow", escalations=(
    DecisionObject("CORPUS-1", "escalated for the corpus", "MEDIUM", rubric="general"),))


def raw_event(form: str, text: str) -> dict[str, Any]:
    """A Claude Code hook payload carrying `text` where `form` says."""
    base: dict[str, Any] = {"session_id": "corpus", "cwd": "/repo", "permission_mode": "default"}
    if form == "prompt":
        return {**base, "hook_event_name": "UserPromptSubmit", "prompt": text}
    tool, tool_input = {
        "bash": ("Bash", {"command": text, "description": "run it"}),
        "write": ("Write", {"file_path": "/repo/config.txt", "content": text}),
        "response": ("Bash", {"command": "cat config", "description": "show it"}),
        "webfetch": ("WebFetch", {"url": text, "prompt": "summarize"}),
    }[form]
    raw = {**base, "hook_event_name": "PreToolUse", "tool_name": tool, "tool_input": tool_input,
           "tool_use_id": "toolu_corpus"}
    if form == "response":
        raw.update(hook_event_name="PostToolUse",
                   tool_response={"stdout": text, "stderr": "", "interrupted": False})
    return raw


def outputs(form: str, text: str) -> list[str]:
    """What leaves the process for this text: the built request, and the preprocessed input."""
    raw = raw_event(form, text)
    payload = request.build(claude.parse(raw), DECISION, MANIFEST, SETTINGS)
    return [json.dumps(payload), json.dumps(redact(preprocess(raw)))]


def leaked(secret: str, texts: list[str]) -> bool:
    """Whether any 8 characters of `secret` (all of it, when shorter) survive in the texts,
    as they are or as JSON escapes them."""
    forms = {secret, json.dumps(secret)[1:-1]}
    width = min(8, len(secret))
    return any(f[i:i + width] in t for f in forms for i in range(len(f) - width + 1)
               for t in texts)


def changed(form: str, text: str) -> bool:
    raw = raw_event(form, text)
    payload = request.build(claude.parse(raw), DECISION, MANIFEST, SETTINGS)
    sent = payload["user_prompts"] if form == "prompt" else payload["event"]
    original = [text] if form == "prompt" else raw
    pre = preprocess(raw)
    return sent != original or redact(pre) != pre


@pytest.mark.parametrize("item", CASES, ids=[c.id for c in CASES])
def test_no_secret_leaves_through_the_request_builder(item: Case) -> None:
    """No 8 characters of any secret span reach the judge's payload or Cupcake's input."""
    texts = outputs(item.form, item.text)
    assert [s for s in item.secrets if leaked(s, texts)] == []
    assert "[REDACTED:" in texts[0]


@pytest.mark.parametrize(("form", "text"), [x[1:] for x in LOOKALIKES],
                         ids=[x[0] for x in LOOKALIKES])
def test_lookalike_reaches_the_judge_unchanged(form: str, text: str) -> None:
    """Placeholders, documented examples, references, masks, ports and paths stay as written."""
    assert not changed(form, text)


def test_policy_reasons_quoting_the_input_are_redacted() -> None:
    """A policy's reason may quote the command (`sprintf` in Rego); it is sent to the judge."""
    raw = raw_event("bash", f"docker login -u x -p {DCKR[0]}")
    quoted = f"escalated: {raw['tool_input']['command']}"
    decision = Decision("allow", quoted, escalations=(
        DecisionObject("CORPUS-2", quoted, "HIGH", rubric="general"),))
    payload = request.build(claude.parse(raw), decision, MANIFEST, SETTINGS)
    assert not leaked(DCKR[0], [json.dumps(payload)])
    assert payload["escalations"][0]["reason"].startswith("escalated: docker login -u x -p [")


def test_corpus_covers_every_form_and_36_kinds() -> None:
    assert {c.form for c in CASES} == {"bash", "write", "response", "webfetch", "prompt"}
    assert len({c.kind for c in CASES}) == 36
    assert len({c.id for c in CASES}) == len(CASES)


def measure() -> str:
    spans = [(c, s) for c in CASES for s in c.secrets]
    outs = {c.id: outputs(c.form, c.text) for c in CASES}
    missed = [f"{c.id}:{s[:12]}" for c, s in spans if leaked(s, outs[c.id])]
    wrong = [x[0] for x in LOOKALIKES if changed(x[1], x[2])]
    return (f"secret spans redacted: {len(spans) - len(missed)}/{len(spans)} "
            f"({len({c.kind for c in CASES})} kinds); look-alikes changed: "
            f"{len(wrong)}/{len(LOOKALIKES)}\nleaked: {missed}\nchanged: {wrong}")


if __name__ == "__main__":
    print(measure())
