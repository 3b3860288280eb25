"""`redact()`: what must be masked, and ordinary text that must be left alone."""

import pytest

from pilothouse.redaction import redact

MASKED = {
    "password=hunter2 user=bob": "password=*** user=bob",
    "db_password=hunter2": "db_password=***",
    "access_token=abc123&x=1": "access_token=***&x=1",
    "PGPASSWORD=hunter2 psql": "PGPASSWORD=*** psql",
    '{"password": "hunter2", "user": "bob"}': '{"password": "***", "user": "bob"}',
    "password='my secret' next": "password='***' next",
    "api_key: sk-live-123": "api_key: ***",
    "connect postgresql://u:pw@db:5432/x failed": "connect postgresql://***@db:5432/x failed",
}

UNTOUCHED = [
    "tokens processed: 5",
    "password_policy=strict",
    "secret_count=3",
    "12:30:00 request done",
    "the password field is required",
]


@pytest.mark.parametrize("text,expected", list(MASKED.items()))
def test_masks_secrets(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("text", UNTOUCHED)
def test_leaves_ordinary_text_alone(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "secret 'db.password': Vault at http://127.0.0.1:8200 is unreachable",
        'checks[3].url = {"secret": "db.url"}',
        "required secret 'db.url' not found; looked in: env SHOP_DB_URL",
    ],
)
def test_names_of_secrets_are_not_values(text: str) -> None:
    assert redact(text) == text


def test_client_secret_is_masked() -> None:
    assert redact("client_secret=abc123 scope=x") == "client_secret=*** scope=x"
