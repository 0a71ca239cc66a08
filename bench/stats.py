"""Latency samples and the figures reported from them."""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass, field


@dataclass
class Samples:
    """Per-operation latencies (ns) and the wall time of the whole phase."""

    latencies_ns: list[int] = field(default_factory=list)
    wall_ns: int = 0

    @property
    def ops_per_s(self) -> float:
        return len(self.latencies_ns) / (self.wall_ns / 1e9) if self.wall_ns else 0.0

    def percentile_us(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ns)
        if not ordered:
            return 0.0
        index = min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))
        return ordered[index] / 1000


class Timer:
    """``with timer.op(): ...`` records one operation; the phase wall time spans start..stop."""

    def __init__(self) -> None:
        self.samples = Samples()
        self._started = 0

    def __enter__(self) -> Timer:
        self._started = time.perf_counter_ns()
        return self

    def __exit__(self, *exc: object) -> None:
        self.samples.wall_ns = time.perf_counter_ns() - self._started


def peak_rss_mb() -> float:
    """This process's peak RSS. On Linux VmHWM, because ru_maxrss survives exec: a child
    started by a big parent would report the parent's size."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
