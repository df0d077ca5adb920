"""The benchmark commands' memory readings (Linux /proc)."""

import os
import threading


def rss(pid: int | None = None) -> int:
    """This process's (or `pid`'s) resident memory in bytes (0 where /proc is missing)."""
    try:
        with open(f"/proc/{pid or 'self'}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


class PeakRss:
    """The process's resident memory, sampled every 20 ms while the block runs: `start` and
    `peak` in bytes."""

    def __init__(self):
        self.peak = self.start = rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())
