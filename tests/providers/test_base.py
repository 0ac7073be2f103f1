from __future__ import annotations

from cloudtune.providers.base import tail_lines


def test_tail_lines() -> None:
    text = "a\nb\nc\n"
    assert tail_lines(text, None) == text
    assert tail_lines(text, 2) == "b\nc\n"
    assert tail_lines(text, 10) == text
    assert tail_lines(text, 0) == ""
    assert tail_lines("", 3) == ""
