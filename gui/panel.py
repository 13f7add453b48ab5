"""What a dashboard panel is, where it sits, and when it redraws.

A panel is a Qt widget that draws one view of a running decode. The window (``gui/app.py``) knows its
panels only through :data:`gui.app.PANELS`, one :class:`PanelSlot` line each, and through the
:class:`Panel` protocol: ``redraw_key(view)`` says whether there is something new to draw (a key that
changes when the data does, ``None`` for nothing), ``period_s`` how often at most it redraws, and
``draw(view, now)`` draws. Each poll of the window's timer redraws at most one panel, the one that has
waited longest (:class:`PanelScheduler`), so the event loop is never busy for long.

Adding a panel: write ``gui/mine_panel.py`` with a widget that has those three members, then add
``PanelSlot("mine_panel", MinePanel, column=1, stretch=2)`` to ``PANELS`` in ``gui/app.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class PanelView:
    """One poll's snapshot with what every panel needs to decide and draw.

    Attributes
    ----------
    snapshot : PipelineSnapshot
        What the decoder published (``decoder/snapshot.py``).
    eeg : ndarray, shape (n_chans, n_times), or None
        The recent EEG (µV) of the snapshot.
    eeg_key : tuple or None
        A fingerprint that changes when new EEG samples arrived; ``None`` when there is no EEG to show.
    counters : dict
        The snapshot's counters (windows, drops, ...); empty when absent.
    health : object or None
        The stream's health (``stream.source.StreamHealth``).
    tick : int
        Number of this poll (changes every poll: a key for panels that redraw on a period only).
    summary : dict
        The decode's run summary (``SnapshotSource.summary``), fetched at most once a second; empty
        before the first.
    silence : str or None
        ``"stalled"`` or ``"lost"`` while no new samples come (:meth:`gui.status.StreamStatus.silence`):
        what is drawn is frozen; None while they come.
    """

    snapshot: Any
    eeg: Any
    eeg_key: tuple | None
    counters: Mapping = field(default_factory=dict)
    health: Any = None
    tick: int = 0
    summary: Mapping = field(default_factory=dict)
    silence: str | None = None


class Panel(Protocol):
    """The dashboard's contract with a panel (a ``QWidget`` that also has these)."""

    period_s: float
    """Least seconds between two redraws (0: whenever the key changes)."""

    def redraw_key(self, view: PanelView) -> Hashable | None:
        """A value that changes when the panel has something new to draw; ``None``: nothing to draw."""
        ...

    def draw(self, view: PanelView, now: float) -> None:
        """Draw from ``view`` (``now``: the poll's monotonic time in seconds)."""
        ...


@dataclass(frozen=True)
class PanelSlot:
    """Where a panel sits: the window attribute that holds it, how to build it, its column and share.

    Attributes
    ----------
    attribute : str
        Name of the window attribute (``window.eeg_panel``) and of the panel in the scheduler.
    factory : callable
        Builds the widget (usually the class).
    column : int
        0: the left column (full height), 1: the right column (stacked top to bottom).
    stretch : int
        Share of its column's height (right column) or of the window's width (left column).
    """

    attribute: str
    factory: Callable[[], Any]
    column: int = 1
    stretch: int = 1


class PanelScheduler:
    """Pick which panel to redraw at each poll: the one that has waited longest for its new data.

    A panel becomes pending when its :meth:`Panel.redraw_key` changes and at least its ``period_s``
    has passed since it last became pending; it stays pending until drawn.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every key and waiting time (a new pipeline starts)."""
        self._keys: dict[str, Hashable] = {}
        self._next: dict[str, float] = {}
        self.pending: dict[str, float] = {}

    def choose(self, panels: Mapping[str, Panel], view: PanelView, now: float) -> str | None:
        """Update what is pending from ``view`` and return the name of the panel to draw now, if any."""
        for name, panel in panels.items():
            key = panel.redraw_key(view)
            if key is None or key == self._keys.get(name) or now < self._next.get(name, 0.0):
                continue
            self._keys[name] = key
            self._next[name] = now + panel.period_s
            self.pending.setdefault(name, now)
        if not self.pending:
            return None
        name = min(self.pending, key=self.pending.get)
        del self.pending[name]
        return name
