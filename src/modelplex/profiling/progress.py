"""A one-line progress bar with ETA on stderr (no dependency)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_s(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    m, s = divmod(seconds, 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
    """Counts units of work (weighted, e.g. by expected seconds) and redraws one line.

    ETA = elapsed / done * remaining, so it is honest once a few units are done. On a terminal
    the line is redrawn in place; otherwise (a log file, a test) at most every `every_s` seconds.
    """

    def __init__(self, total: float, label: str = "profile", stream: TextIO | None = None,
                 enabled: bool = True, every_s: float = 5.0, width: int = 24) -> None:
        self.total = max(total, 1e-9)  # total work units
        self.done = 0.0  # work units done
        self.label = label  # prefix of the line
        self.stream = stream if stream is not None else sys.stderr  # where the line goes
        self.enabled = enabled  # False: print nothing
        self.every_s = every_s  # redraw interval when the stream is not a terminal
        self.width = width  # characters of the bar
        self._t0 = time.monotonic()
        self._last_draw = -1e9
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def advance(self, units: float, note: str = "") -> None:
        self.done = min(self.total, self.done + units)
        self.draw(note)

    def draw(self, note: str = "", force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not (self._tty or force or now - self._last_draw >= self.every_s):
            return
        self._last_draw = now
        frac = self.done / self.total
        elapsed = now - self._t0
        eta = elapsed / self.done * (self.total - self.done) if self.done > 0 else float("nan")
        filled = int(frac * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        eta_text = format_s(eta) if eta == eta else "?"
        line = f"{self.label} [{bar}] {frac * 100:5.1f}% elapsed {format_s(elapsed)} ETA {eta_text} {note}"
        if self._tty:
            self.stream.write("\r" + line[:150].ljust(150))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self, note: str = "done") -> None:
        if not self.enabled:
            return
        self.done = self.total
        self.draw(note, force=True)
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()
