"""Trace: the `--explain` lines, each with the time since the previous one.

Costs one attribute check per call when off, so the pipeline can call it everywhere.
"""

from __future__ import annotations

import time


class Trace:
    """Collects --explain lines with timings; costs nothing when off."""

    def __init__(self, on: bool) -> None:
        self.on = on
        self.lines: list[str] = []
        self.degradations: list[str] = []  # kept even when off: serve's metrics count them
        self._t0 = time.perf_counter()
        self._last = self._t0

    def __call__(self, text: str) -> None:
        if self.on:
            now = time.perf_counter()
            self.lines.append(f"[{(now - self._last) * 1000:7.2f} ms] {text}")
            self._last = now

    def total_ms(self) -> float:
        return (time.perf_counter() - self._t0) * 1000
