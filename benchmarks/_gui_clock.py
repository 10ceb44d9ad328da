"""What the GUI benchmarks measure with: a main-thread heartbeat, and waiting on events."""

from __future__ import annotations

import time


class Heartbeat:
    """A 10 ms timer on the main thread; ``take()`` returns the longest gap since the last."""

    def __init__(self) -> None:
        from qtpy.QtCore import QElapsedTimer, Qt, QTimer

        self.clock = QElapsedTimer()
        self.clock.start()
        self.last = 0
        self.worst = 0
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._beat)
        self.timer.start()

    def _beat(self) -> None:
        now = self.clock.elapsed()
        self.worst = max(self.worst, now - self.last)
        self.last = now

    def take(self) -> int:
        """The longest gap (ms) since the previous call, and start counting again."""
        worst, self.worst = self.worst, 0
        return worst


def wait(app, condition, timeout: float = 300.0) -> float:
    """Process Qt events until ``condition()``; the seconds it took."""
    start = time.monotonic()
    while not condition():
        app.processEvents()
        time.sleep(0.005)
        if time.monotonic() - start > timeout:
            raise TimeoutError("waited too long")
    return time.monotonic() - start
