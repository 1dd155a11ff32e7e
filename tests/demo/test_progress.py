"""The demo's progress bar: redraws one line on a terminal, prints a line per quarter
elsewhere, and is silent when disabled."""

from __future__ import annotations

import io

import pytest

from portfolio_core.demo._progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _eighty_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")


def test_a_pipe_gets_one_plain_line_per_quarter() -> None:
    out = io.StringIO()
    progress = Progress(8, stream=out)
    progress.label("ignored off a terminal")
    for _ in range(8):
        progress.advance()
    progress.close()
    lines = out.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        "demo: 2/8 done",
        "demo: 4/8 done",
        "demo: 6/8 done",
        "demo: 8/8 done",
    ]
    assert "\r" not in out.getvalue()


def test_a_terminal_gets_one_line_redrawn_in_place_then_cleared() -> None:
    out = Terminal()
    progress = Progress(2, stream=out)
    progress.label("loading the model")
    progress.advance()
    progress.advance(5)  # never past the total
    assert progress.done == 2
    drawn = out.getvalue().split("\r")[1:]
    assert len(drawn) == 4  # the empty bar, the label, and two advances
    assert all(len(frame) == 79 for frame in drawn)
    assert drawn[0].startswith("[" + "-" * 28 + "]   0/2")
    assert drawn[1].rstrip().endswith("loading the model")
    assert drawn[-1].startswith("[" + "#" * 28 + "]   2/2")
    progress.close()
    assert out.getvalue().endswith("\r" + " " * 79 + "\r")


def test_disabled_progress_writes_nothing_even_on_a_terminal() -> None:
    out = Terminal()
    progress = Progress(4, stream=out, enabled=False)
    progress.label("x")
    progress.advance(4)
    progress.close()
    assert out.getvalue() == ""
