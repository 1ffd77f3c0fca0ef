"""The training's progress on a terminal: a bar of steps on stderr, and log lines above it."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


def say(line: str) -> None:
    """Print a log line on stdout, above the progress bar if one is showing."""
    tqdm.write(line, file=sys.stdout)
    sys.stdout.flush()


class ProgressBar:
    """A tqdm bar of training steps on stderr, drawn only on a terminal, once training has
    run ``delay`` seconds, and erased when it ends. (tqdm's own ``delay`` does not hold: each
    ``tqdm.write`` redraws the bar, and an early one is then never erased.)"""

    def __init__(self, total: int, delay: float = 2.0) -> None:
        self.total, self.delay, self.done = total, delay, 0
        self.start, self.bar = time.perf_counter(), None

    def update(self, n: int) -> None:
        """Count n more steps done; draw the bar once the delay has passed."""
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif sys.stderr.isatty() and time.perf_counter() - self.start >= self.delay:
            self.bar = tqdm(
                total=self.total,
                initial=self.done,
                desc="train",
                unit="step",
                file=sys.stderr,
                leave=False,
            )

    def close(self) -> None:
        """Erase the bar, if it was drawn."""
        if self.bar is not None:
            self.bar.close()
