"""Days of the week and HH:MM-HH:MM spans, as rules and the dialer use them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = datetime.weekday()
MINUTES_PER_DAY = 24 * 60

_SPAN = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


class SpanError(ValueError):
    """A span that cannot be read; the message says why."""


@dataclass(frozen=True)
class TimeSpan:
    """[start, end) in minutes after midnight; start > end spans midnight."""

    start: int
    end: int

    @classmethod
    def parse(cls, text: str) -> TimeSpan:
        match = _SPAN.match(text)
        if match is None:
            raise SpanError(f"'{text}' is not a span HH:MM-HH:MM")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        for hours, minutes in ((h1, m1), (h2, m2)):
            # 24:00 is allowed as the end of the day, nothing later.
            if minutes > 59 or hours > 24 or (hours == 24 and minutes):
                raise SpanError(f"'{text}' has an impossible time {hours:02}:{minutes:02}")
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if start == MINUTES_PER_DAY:
            raise SpanError(f"'{text}' starts at 24:00; start at 00:00 instead")
        if start == end:
            raise SpanError(f"'{text}' is empty: it starts where it ends")
        return cls(start, end)

    def contains(self, moment: time) -> bool:
        minute = moment.hour * 60 + moment.minute
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end

    def minutes(self) -> int:
        """A bit mask of the minutes of the day inside the span."""
        if self.start < self.end:
            return ((1 << self.end) - 1) ^ ((1 << self.start) - 1)
        return ((1 << MINUTES_PER_DAY) - 1) ^ ((1 << self.start) - 1) | ((1 << self.end) - 1)

    def __str__(self) -> str:
        return f"{self.start // 60:02}:{self.start % 60:02}-{self.end // 60:02}:{self.end % 60:02}"


def day_index(name: str) -> int | None:
    try:
        return DAYS.index(name)
    except ValueError:
        return None
