"""The watchdog of a runner process: kills it when its current call is past its deadline."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable

__all__ = ["Watchdog"]


class Watchdog:
    """One thread that kills a runner process whose current call is past its deadline.

    Arming and disarming only set fields under a lock (a thread per call cost
    ~1 ms per batch here). Deadlines only move later, so the thread, asleep until
    the deadline it last saw, needs waking only when it had none.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._on_expire: Callable[[], None] | None = None
        self._thread: threading.Thread | None = None
        self._generation = 0  # a thread runs while the generation it started in lasts

    def arm(
        self, proc: subprocess.Popen[bytes], seconds: float, on_expire: Callable[[], None]
    ) -> None:
        """Kill ``proc`` (after calling ``on_expire``) unless disarmed within ``seconds``."""
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run,
                    args=(self._generation,),
                    name=f"aimass-watchdog-{self._name}",
                    daemon=True,
                )
                self._thread.start()
            idle = self._deadline is None
            self._deadline = time.monotonic() + seconds
            self._proc, self._on_expire = proc, on_expire
            if idle:
                self._cond.notify()

    def disarm(self) -> None:
        """The call finished in time."""
        with self._cond:
            self._deadline = None
            self._proc = self._on_expire = None

    def stop(self) -> None:
        """End the thread (a later :meth:`arm` starts a new one)."""
        with self._cond:
            self._generation += 1
            self._thread = None
            self._cond.notify_all()

    def _run(self, generation: int) -> None:
        with self._cond:
            while generation == self._generation:
                if self._deadline is None:
                    self._cond.wait()
                    continue
                remaining = self._deadline - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                if self._on_expire is not None:
                    self._on_expire()
                if self._proc is not None:
                    self._proc.kill()
                self._deadline = None
                self._proc = self._on_expire = None
