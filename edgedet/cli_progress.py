"""How the CLI draws progress events: click progress bars on stderr, or plain lines when
stderr is not a terminal (a log file)."""

from __future__ import annotations

import sys
from typing import Optional

import click

from .runtime.progress import ProgressEvent

__all__ = ["ProgressBar", "TrainView"]


class ProgressBar:
    """A callable that draws ``ProgressEvent``s as one click progress bar: opened at the first
    event (``total`` stands in for an event without one), closed when the task finishes or the
    ``with`` block ends. Shows the rate and the failures when the events carry them."""

    def __init__(self, label: str, total: Optional[int] = None) -> None:
        self.label, self.total = label, total
        self._bar = None
        self._done = 0

    def __call__(self, event: ProgressEvent) -> None:
        self.show(event)

    def show(self, event: ProgressEvent, status: Optional[str] = None) -> None:
        """Draw ``event``, with ``status`` beside the bar (default: its rate and failures)."""
        if self._bar is None:
            self._bar = click.progressbar(length=event.total or self.total or 1, label=self.label, file=sys.stderr,
                                          show_pos=True, item_show_func=lambda text: text)
            self._bar.__enter__()
        if status is None:
            status = ", ".join(([f"{event.rate:.1f}/s"] if event.rate is not None else [])
                               + ([f"{event.failed} failed"] if event.failed else []))
        self._bar.update(max(event.done - self._done, 0), status or None)
        self._done = event.done
        if event.finished:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TrainView:
    """Training progress: on a terminal a bar per epoch, in a log a line every ``every`` steps;
    a line per evaluation."""

    def __init__(self, interactive: Optional[bool] = None, every: int = 20) -> None:
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self.every = every
        self._bar: Optional[ProgressBar] = None

    def __call__(self, event) -> None:
        from .train import EpochEval

        if isinstance(event, EpochEval):
            self.close()
            click.echo(f"epoch {event.epoch}: val AP {event.metrics.AP:.4f} AP50 {event.metrics.AP50:.4f}", err=True)
            return
        loss = event.losses
        status = (f"loss {loss['loss']:.3f} (iou {loss['iou']:.3f} obj {loss['obj']:.3f} cls {loss['cls']:.3f} "
                  f"l1 {loss['l1']:.3f}) lr {event.lr:.2e} {event.images_per_s:.1f} img/s "
                  f"ETA {event.eta_minutes:.0f} min")
        if self.interactive:
            if event.iter == 1 or self._bar is None:
                self.close()
                self._bar = ProgressBar(f"epoch {event.epoch}/{event.epochs}")
            self._bar.show(ProgressEvent("train", event.iter, event.iters), status)
        elif event.iter == event.iters or event.iter % self.every == 0:
            click.echo(f"epoch {event.epoch}/{event.epochs} iter {event.iter}/{event.iters} {status}", err=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "TrainView":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
