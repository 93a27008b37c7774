"""``aml_client.cli.bench``: what a run prints on the way when nobody watches a terminal."""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Iterator
from typing import Any

from rich.console import Console

from aml_client.cli import bench, output


class _Events:
    """A load process's event stream, as ``_follow`` reads it."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self._events = events
        self.log_tail: deque[str] = deque()

    def events(self) -> Iterator[dict[str, Any]]:
        yield from self._events

    def wait(self) -> int:
        return 0


def _progress(second: int) -> dict[str, Any]:
    return {"type": "progress", "elapsed_s": second, "in_flight": 3, "requests": 1234 * second,
            "rps": 1234.5, "failures": 0, "p50_us": 20_123, "p99_us": 123_456,
            "max_us": 1_234_567, "measure": "corrected"}


def test_progress_on_a_non_terminal_is_a_plain_line_every_few_seconds(monkeypatch) -> None:
    buffer = io.StringIO()
    monkeypatch.setattr(output, "console", Console(file=buffer, width=40, color_system=None,
                                                   highlight=False, soft_wrap=True))
    seconds = list(range(1, 13))
    times = iter(float(s) for s in seconds)
    events = [*(_progress(s) for s in seconds), {"type": "result", "summary": {}}]
    results, error, interrupted = bench._follow(
        _Events(events), live=False, total="/20,000", lines=True, clock=lambda: next(times))
    assert error is None and not interrupted and len(results) == 1
    lines = buffer.getvalue().splitlines()
    # The first at once, then one each PROGRESS_EVERY_S (5 s): seconds 1, 6 and 11.
    assert [line.split(",")[0] for line in lines] == [
        "progress: 1 s", "progress: 6 s", "progress: 11 s"]
    assert lines[1] == (
        "progress: 6 s, 7,404/20,000 requests, 1,234.5 req/s, 0 failures, 3 in flight, "
        "p50 (corrected) 20.1 ms, p99 (corrected) 123.5 ms, max (corrected) 1,234.6 ms")


def test_no_progress_lines_when_asked_for_none(monkeypatch) -> None:
    buffer = io.StringIO()
    monkeypatch.setattr(output, "console", Console(file=buffer, width=40))
    bench._follow(_Events([_progress(1)]), live=False, total="", lines=False)
    assert buffer.getvalue() == ""


def test_a_narrow_terminal_shows_the_live_progress_as_a_line(monkeypatch) -> None:
    monkeypatch.setattr(output, "console", Console(file=io.StringIO(), width=40,
                                                   force_terminal=True))
    view = bench._live_view(_progress(3), "")
    assert not hasattr(view, "columns") and "1,234.5 req/s" in str(view)
    monkeypatch.setattr(output, "console", Console(file=io.StringIO(), width=200,
                                                   force_terminal=True))
    assert hasattr(bench._live_view(_progress(3), ""), "columns")
