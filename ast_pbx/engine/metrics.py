"""How fast the engine answers: from a caller's key to the engine's next ARI request."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field


@dataclass
class Latencies:
    samples: list[float] = field(default_factory=list)  # seconds

    def record(self, seconds: float) -> None:
        self.samples.append(seconds)

    def summary(self) -> dict[str, float]:
        if not self.samples:
            return {"count": 0}
        ordered = sorted(self.samples)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        return {
            "count": len(ordered),
            "p50_ms": round(statistics.median(ordered) * 1000, 3),
            "p99_ms": round(p99 * 1000, 3),
            "max_ms": round(ordered[-1] * 1000, 3),
        }
