"""docs/troubleshooting.md quotes the messages users see: each quoted **Message** must still be
printed by the source, so the page cannot drift from the CLI (a changed message fails here and
names the entry). `…` marks the parts that vary; every fixed part must be a text in the source."""

from __future__ import annotations

import re

from tests.helpers import ROOT

DOC = ROOT / "docs" / "troubleshooting.md"
MESSAGE = re.compile(r"^- \*\*Message\*\*: `([^`]+)`$", re.MULTILINE)
EDGES = " :;,'\"?()$.…"


def source_text() -> str:
    return "\n".join(p.read_text() for p in sorted((ROOT / "src" / "pilothouse").rglob("*.py")))


def fixed_parts(message: str) -> list[str]:
    """The parts of a quoted message that do not vary (between the `…`), trimmed of punctuation."""
    return [p.strip(EDGES) for p in message.split("…") if len(p.strip(EDGES)) >= 4]


def test_every_quoted_message_is_printed_by_the_source() -> None:
    quoted = MESSAGE.findall(DOC.read_text())
    assert len(quoted) >= 40, "the page quotes the messages it explains"
    source = source_text()
    missing = [(m, part) for m in quoted for part in fixed_parts(m) if part not in source]
    assert missing == [], "troubleshooting.md quotes text the source no longer prints"


def test_the_check_is_not_vacuous() -> None:
    """A message the source does not print is caught (the parts are compared, not skipped)."""
    assert fixed_parts("secret '…' was not founnd; looked in: …") == ["secret", "was not founnd; looked in"]
    assert "was not founnd; looked in" not in source_text()
