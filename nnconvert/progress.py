"""A one-line progress bar on stderr: items done, items/s, ETA (or the stage under way).

Shown only on a terminal, only once the work has run for ``delay`` seconds
(short runs stay silent), never with ``quiet``; redrawn at most every 0.2 s.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["ProgressBar"]


class ProgressBar:
    """``update(done, total)`` (or ``stage(name)``) as work advances, ``close()`` at the end (clears the line)."""

    def __init__(self, label: str, unit: str = "rows", *, stream: TextIO | None = None, quiet: bool = False,
                 delay: float = 2.0, interval: float = 0.2):  # fmt: skip
        self.label, self.unit = label, unit
        self.stream: Any = stream or sys.stderr
        self.enabled = not quiet and bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.monotonic()
        self.delay, self.interval = delay, interval
        self.last_draw = 0.0
        self.shown = False

    def update(self, done: int, total: int | None = None) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        elapsed = now - self.start
        if elapsed < self.delay or (now - self.last_draw < self.interval and done != total):
            return
        self.last_draw = now
        rate = done / elapsed if elapsed > 0 else 0.0
        text = f"{self.label}: {done:,}"
        if total:
            eta = (total - done) / rate if rate > 0 else float("inf")
            text += f"/{total:,} {self.unit} ({100 * done / total:.0f}%), {rate:,.0f} {self.unit}/s, ETA {_duration(eta)}"
        else:
            text += f" {self.unit}, {rate:,.0f} {self.unit}/s"
        self._draw(text)

    def stage(self, name: str) -> None:
        """Show the stage that starts now and the time so far (work of unknown size; not rate-limited)."""
        elapsed = time.monotonic() - self.start
        if self.enabled and elapsed >= self.delay:
            self._draw(f"{self.label}: {name} ({elapsed:.0f} s)")

    def _draw(self, text: str) -> None:
        self.stream.write(f"\r\033[K{text}")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
