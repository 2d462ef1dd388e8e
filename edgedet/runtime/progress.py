"""The one progress protocol of every long operation: a callback that takes a typed event.

Library code reports through it and never prints; the CLI turns events into progress bars
(``edgedet.cli``), and an embedding application into whatever it shows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional


@dataclass(frozen=True)
class ProgressEvent:
    """How far ``task`` has come: ``done`` of ``total`` items (``total`` is None when it is open,
    as for a camera), ``failed`` of them failed, at ``rate`` items per second when known."""

    task: str
    done: int
    total: Optional[int] = None
    failed: int = 0
    rate: Optional[float] = None

    @property
    def finished(self) -> bool:
        return self.total is not None and self.done >= self.total


ProgressCallback = Callable[[ProgressEvent], None]


def report(progress: Optional[ProgressCallback], task: str, done: int, total: Optional[int] = None, *,
           failed: int = 0, rate: Optional[float] = None) -> None:
    """Send one event when there is a callback to send it to."""
    if progress is not None:
        progress(ProgressEvent(task, done, total, failed, rate))
