"""Recognising a literal credential in a config value, so it is refused before it reaches an artifact.

The whole config file becomes the ConfigMap, and `[deploy] env` becomes Deployment env, systemd
`Environment=` and compose `environment:`: a password written into any value would be published
in clear. A credential belongs in a secret reference (`{ secret = "db.url" }`, `[deploy]
secret_env`). Detection is deliberately narrow (few false positives): a password in a URL's
user info or query, a libpq `password=` pair, a well-known token prefix; and, for environment
variables, a name that says it holds a secret.

A small hand-written list instead of a scanner such as detect-secrets: config loading runs in
every process and must stay dependency-light, and the scanner's entropy heuristics would refuse
ordinary values (image digests, trace ids).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

_URL = re.compile(r"[A-Za-z][\w+.-]*://[^\s'\"]+")
_QUERY_KEY = re.compile(
    r"(?i)^(?:pass|[\w-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key))$"
)
_DSN_PAIR = re.compile(r"(?i)(?:^|\s)(?:password|passwd|sslpassword)\s*=\s*\S")
# Prefixes vendors put on live credentials (Stripe, GitHub, GitLab, Slack, AWS, Google, OpenAI),
# and PEM private keys.
_TOKEN = re.compile(
    r"\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{8,}"
    r"|\b(?:ghp|gho|ghu|ghs|ghr)_[0-9A-Za-z]{20,}|\bgithub_pat_[0-9A-Za-z_]{20,}"
    r"|\bglpat-[0-9A-Za-z_-]{20,}"
    r"|\bxox[abposr]-[0-9A-Za-z-]{10,}"
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
    r"|\bAIza[0-9A-Za-z_-]{35}"
    r"|\bsk-(?:proj-)?[0-9A-Za-z_-]{32,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
)
# The name ends in the word: DB_PASSWORD, STRIPE_API_KEY, GITHUB_TOKEN, SENTRY_DSN (TOKEN_TTL does not).
_SENSITIVE_ENV = re.compile(
    r"(?i)(?:^|_)(?:PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY"
    r"|CREDENTIALS?|DSN)$"
)


def credential_in(value: str) -> str | None:
    """What kind of credential `value` holds ("a password in the URL", ...), or None."""
    for match in _URL.finditer(value):
        try:
            parts = urlsplit(match.group())
            if parts.password:
                return "a password in the URL"
            if any(_QUERY_KEY.match(key) and item for key, item in parse_qsl(parts.query)):
                return "a password or token in the URL's query"
        except ValueError:
            continue
    if _DSN_PAIR.search(value):
        return "a libpq password setting"
    if _TOKEN.search(value):
        return "an API key or token"
    return None


def sensitive_env_name(name: str) -> bool:
    """An environment variable whose name says it holds a secret (DB_PASSWORD, STRIPE_API_KEY)."""
    return bool(_SENSITIVE_ENV.search(name))


def advice(what: str) -> str:
    return f'a literal value must not contain {what}; use {{ secret = "<name>" }} instead'


def literal_credentials(data: object) -> Iterator[tuple[tuple[int | str, ...], str, str]]:
    """(key path, value, what) for every string in a parsed document that holds a credential.

    Iterative, in document order: every value of the file reaches the ConfigMap, so every value is
    looked at, not only the fields known to hold URLs.
    """
    stack: list[tuple[tuple[int | str, ...], object]] = [((), data)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            stack.extend(reversed([((*path, str(k)), v) for k, v in node.items()]))
        elif isinstance(node, list):
            stack.extend(reversed([((*path, i), v) for i, v in enumerate(node)]))
        elif isinstance(node, str):
            what = credential_in(node)
            if what is not None:
                yield path, node, what
