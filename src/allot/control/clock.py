"""The wall clock, behind the ``Clock`` port so tests can run the live loop in virtual time."""

from __future__ import annotations

import time


class SystemClock:
    """Seconds since the epoch, from the operating system."""

    def now(self) -> float:
        """The current time."""
        return time.time()
