"""Which panel redraws when (gui/panel.py), and that the window builds what PANELS lists."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from eegmusic.gui.panel import PanelScheduler, PanelView


@dataclass
class FakePanel:
    """A panel whose key is set by the test (no Qt: the scheduler only sees the protocol)."""

    period_s: float = 0.0
    key: object = None
    drawn: list = field(default_factory=list)

    def redraw_key(self, view):
        return self.key

    def draw(self, view, now):
        self.drawn.append(now)


def view(tick: int = 0) -> PanelView:
    return PanelView(snapshot=None, eeg=None, eeg_key=None, tick=tick)


def test_nothing_to_draw_until_a_key_appears():
    scheduler, panel = PanelScheduler(), FakePanel()
    assert scheduler.choose({"a": panel}, view(), 0.0) is None
    panel.key = 1
    assert scheduler.choose({"a": panel}, view(), 0.1) == "a"
    assert scheduler.choose({"a": panel}, view(), 0.2) is None  # same key: drawn already


def test_one_panel_per_poll_the_one_waiting_longest():
    scheduler = PanelScheduler()
    other, early, late = FakePanel(key=1), FakePanel(key=1), FakePanel()
    panels = {"other": other, "early": early, "late": late}
    assert scheduler.choose(panels, view(), 0.0) == "other"  # both pending since 0.0: one per poll
    late.key = 1
    assert scheduler.choose(panels, view(), 0.5) == "early"  # waiting since 0.0, late only since 0.5
    assert scheduler.choose(panels, view(), 0.6) == "late"
    assert scheduler.choose(panels, view(), 0.7) is None


def test_a_period_spaces_redraws_and_a_changed_key_waits_for_it():
    scheduler, panel = PanelScheduler(), FakePanel(period_s=1.0)
    times = []
    for step in range(30):  # new data every 0.1 s for 3 s
        panel.key = step
        if scheduler.choose({"p": panel}, view(step), step * 0.1) == "p":
            times.append(round(step * 0.1, 1))
    assert times == [0.0, 1.0, 2.0]


def test_reset_forgets_keys():
    scheduler, panel = PanelScheduler(), FakePanel(key="same")
    assert scheduler.choose({"p": panel}, view(), 0.0) == "p"
    scheduler.reset()
    assert scheduler.choose({"p": panel}, view(), 0.1) == "p"  # a new pipeline draws again


@pytest.mark.gui
def test_the_window_builds_every_registered_panel(qtbot):
    from eegmusic.gui.app import PANELS, MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    assert list(window.panels) == [slot.attribute for slot in PANELS]
    for slot in PANELS:
        panel = getattr(window, slot.attribute)
        assert window.panels[slot.attribute] is panel
        assert callable(panel.redraw_key) and callable(panel.draw) and panel.period_s >= 0
