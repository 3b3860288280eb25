"""A resolved secret never prints itself, and the redactor knows it."""

from __future__ import annotations

import logging
import pickle

import pytest

from pilothouse.redaction import redact
from pilothouse.secrets import SecretValue


def test_masked_everywhere_it_could_be_printed(caplog: pytest.LogCaptureFixture) -> None:
    value = SecretValue("s3cr3t-value-for-masking")
    assert repr(value) == "SecretValue('***')"
    assert str(value) == "***"
    assert f"{value}" == "***" and f"{value!r}" == "SecretValue('***')"
    assert "s3cr3t" not in repr({"url": value}) and "s3cr3t" not in repr([value])
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("connecting with %s", value)
    assert "s3cr3t" not in caplog.text
    assert value.reveal() == "s3cr3t-value-for-masking"


def test_registered_with_the_redactor() -> None:
    SecretValue("registered-value-42")
    assert redact("got registered-value-42 back") == "got *** back"


def test_equality_without_revealing_and_no_pickling() -> None:
    assert SecretValue("abcd-1") == SecretValue("abcd-1")
    assert SecretValue("abcd-1") != SecretValue("abcd-2")
    assert not SecretValue("")
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(SecretValue("abcd-3"))
