"""Progress bars on a terminal, and log lines above them: one tqdm wrapper for every bar.

Code below the command line never decides whether to draw: it is handed a factory (a
``progress`` argument, or the downloader's ``Settings.progress``), calls it with the total
to get a bar, moves it with ``update(n)`` and ends it with ``close()``. The bar decides the
rest: it draws on stderr only on a terminal, only once ``delay`` seconds have passed, and is
erased when done. ``update(1)`` is cheap enough to call once per training step.
"""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

#: Redraw checks a bar makes over a whole run at most: ``update`` only adds, and looks at the
#: clock and the terminal each 1/REDRAWS of the total (tqdm then redraws at most 10 times a s).
REDRAWS = 1000


def say(line: str) -> None:
    """Print a log line on stdout, above the progress bar if one is showing."""
    tqdm.write(line, file=sys.stdout)
    sys.stdout.flush()


class ProgressBar:
    """A bar of ``total`` units (None: unknown) named ``desc``, drawn on stderr on a terminal
    once ``delay`` seconds have passed since it was made, and erased when it is closed.

    tqdm's own ``delay`` is not used: each :func:`say` redraws tqdm's bars, and one drawn
    early that way is never erased. ``unit`` and ``unit_scale`` are tqdm's (``"B"`` and
    True: bytes in k, M, G); ``initial``: the units done before this bar was made.
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "it",
        unit_scale: bool = False,
        delay: float = 0.0,
        initial: int = 0,
    ) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.unit_scale = unit_scale
        self.delay = delay
        self.done = initial  # units counted into the drawn bar (or that it starts with)
        self.pending = 0  # units counted since, not yet handed to tqdm
        self.every = max(1, (total or 0) // REDRAWS)  # units between two looks at the clock
        self.start = time.perf_counter()
        self.bar: tqdm | None = None
        self.postfix = ""
        self.closed = False
        if delay <= 0:
            self.draw()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units done; now and then, draw or move the bar."""
        self.pending += n
        if self.pending >= self.every:
            self.draw()

    def draw(self) -> None:
        """Hand the pending units to the bar, making it if the delay has passed on a terminal."""
        moved = self.pending
        self.done += moved
        self.pending = 0
        if self.bar is not None:
            self.bar.update(moved)
        elif self.shows():
            self.bar = tqdm(
                total=self.total,
                initial=self.done,
                desc=self.desc,
                unit=self.unit,
                unit_scale=self.unit_scale,
                file=sys.stderr,
                leave=False,
                postfix=self.postfix or None,
            )

    def shows(self) -> bool:
        """Whether the bar is to be drawn now: open, on a terminal, and past its delay."""
        late = time.perf_counter() - self.start >= self.delay
        return not self.closed and late and sys.stderr.isatty()

    def note(self, text: str) -> None:
        """Show ``text`` after the bar's counts (the best score so far, say)."""
        self.postfix = text
        if self.bar is not None:
            self.bar.set_postfix_str(text)

    def close(self) -> None:
        """Erase the bar, if it was drawn; it is not drawn again. Closing twice is harmless."""
        self.closed = True
        if self.bar is not None:
            self.bar.close()
            self.bar = None
