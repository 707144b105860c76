"""The service's clock: `now` for every decision a job makes, and the instant arq reads for a job.

Decisions (the sending window, the tenant-local quota day, the next action of a lead) read `clock()`.
arq's workers poll their queues by the host's clock, so a job's score and enqueue time are that clock's:
`clock.wall_ms(at)` is the host time, in ms, of the decision instant `at`. The two differ only where a
test moves the service's time (CLOCK_SHIFT_S in a worker process, a fixed clock in process), so that a
whole run can happen on a holiday or at a DST change while arq still runs its jobs now.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


def epoch_ms(at: datetime) -> int:
    """An instant as arq and Redis write it: milliseconds since the epoch."""
    return int(at.timestamp() * 1000)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def epoch_us(at: datetime) -> int:
    """An instant in microseconds since the epoch, exactly (no float on the way)."""
    return (at - _EPOCH) // _MICROSECOND


class Clock(Protocol):
    def __call__(self) -> datetime:
        """Now, as the service's decisions see it (aware, UTC)."""
        ...

    def wall_ms(self, at: datetime) -> int:
        """The host's time in ms, as arq reads scores, of the instant `at` of this clock."""
        ...


class SystemClock:
    """The host's clock, ahead of it by `shift_s` seconds (0 in production)."""

    def __init__(self, shift_s: float = 0.0) -> None:
        self._shift = timedelta(seconds=shift_s)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self._shift

    def wall_ms(self, at: datetime) -> int:
        return epoch_ms(at - self._shift)


class FixedClock:
    """A clock that stands still until it is set: `clock.now = ...`. Its instants map to the host's time
    relative to the host's now, so a job enqueued at `clock()` is due at once for a real arq worker."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def wall_ms(self, at: datetime) -> int:
        return epoch_ms(datetime.now(UTC) + (at - self.now))
