"""Bad values of the connection limits and the job store timeout: one clear line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.config.test_errors import GOOD_SERVICE
from tests.config.test_errors import test_bad_config_gives_one_clear_line as assert_one_clear_line

CASES = {
    "zero header timeout": (
        GOOD_SERVICE + 'header_timeout = "0s"\n',
        "service.header_timeout: '0s' is invalid: expected a duration greater than 0s",
    ),
    "zero idle timeout on the ops port": (
        GOOD_SERVICE + '[ops]\nidle_timeout = "0s"\n',
        "ops.idle_timeout: '0s' is invalid: expected a duration greater than 0s",
    ),
    "no connections allowed": (
        GOOD_SERVICE + "max_connections = 0\n",
        "service.max_connections: 0 is invalid: Input should be greater than or equal to 1",
    ),
    "store timeout below a second": (
        GOOD_SERVICE + '[jobs]\nstore_timeout = "500ms"\n',
        "jobs: store_timeout must be at least 1s",
    ),
}


@pytest.mark.parametrize("body,expected", list(CASES.values()), ids=list(CASES))
def test_bad_limits_give_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, expected: str
) -> None:
    assert_one_clear_line(tmp_path, capsys, body, expected)
