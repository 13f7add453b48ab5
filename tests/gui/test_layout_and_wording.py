"""The dashboard's layout on small screens and its wording, widget by widget (no stream, no decode).

The audit of the dashboard found: a window that could not be narrower than 1521 px and mel plots 20 px
tall at 1024x700; r figures without their window and one of them mislabelled "live"; a squeezed r axis;
"LOST" for every second of silence; an empty mel panel for a waveform model; a picker showing the tail of
a stream's description; Refresh enabled while decoding; an unexplained ``audio_to_eeg`` row.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from eegmusic.stream.source import StreamHealth

pytestmark = [pytest.mark.gui, pytest.mark.untimed]   # widgets alone: nothing kept in real time

SUMMARY = {"dynamic_r_total": 0.194, "baseline_dynamic_r_total": {"global_mean": 0.003, "song_mean": -0.006},
           "truth": {"dynamic_r_window_s": 9.98, "scored_frames": 2000}, "vocoder_latency_ms": 46.4,
           "smoothing_latency_ms": 0.0}
"""A decode's run summary, as far as the panels read it."""


def _health(state: str = "connected", *, connected: bool = True, ended: bool = False) -> StreamHealth:
    return StreamHealth(effective_rate=124.8, n_samples=1000, gaps=0, dropped_windows=0, nan_runs=0,
                        reconnects=0, clock_offset=0.0, jitter_ms=0.5, connected=connected, state=state,
                        state_s=3.0, ended=ended)


def _window(qtbot, width: int, height: int):
    from eegmusic.decoder.latency import STAGES
    from eegmusic.gui.app import MainWindow
    from eegmusic.gui.controls import Settings

    window = MainWindow(Settings(stream="cap-1", model="model.onnx", truth="data", no_audio=True))
    qtbot.addWidget(window)
    window.mel_panel.set_truth_visible(True)   # as with --truth: the r label, the run's line and the r plot
    window.stats_panel.update_stats({stage: {"p50": 1.0, "p95": 2.0, "p99": 3.0} for stage in STAGES},
                                    {"windows": 3}, _health())
    window.resize(width, height)
    window.show()
    qtbot.waitExposed(window)
    qtbot.wait(20)   # the panels' first sizes are set once the window is laid out
    return window


# ---------------------------------------------------------------------------- layout (#1, #4)


def test_a_laptop_sized_window_keeps_the_mel_plots_readable(qtbot):
    """1024x700: the window took 1521 px of width and the mel plots 20 px of height."""
    from eegmusic.gui.mel_panel import MEL_MIN_HEIGHT, R_PLOT_MIN_HEIGHT

    window = _window(qtbot, 1024, 700)
    assert window.minimumSizeHint().width() < 1280
    assert (window.width(), window.height()) == (1024, 700)
    assert window.mel_panel.decoded_plot.height() >= MEL_MIN_HEIGHT >= 150
    assert window.mel_panel.r_plot.height() >= R_PLOT_MIN_HEIGHT >= 100
    latency = window.stats_panel.latency
    assert latency.height() < latency.maximumHeight()   # the table scrolls instead of squeezing the mel


def test_the_default_window_shows_every_latency_row(qtbot):
    """Where there is room the table keeps all its rows in sight (the splitter had cut it to seven)."""
    window = _window(qtbot, 1500, 950)
    latency = window.stats_panel.latency
    assert latency.height() == latency.maximumHeight() and latency.rowCount() == 12
    assert window.mel_panel.decoded_plot.height() >= 180


def test_the_r_axis_has_three_labelled_ticks_and_says_what_it_draws(qtbot):
    from eegmusic.gui.mel_panel import MelPanel

    panel = MelPanel()
    qtbot.addWidget(panel)
    axis = panel.r_plot.getAxis("left")
    assert [label for _, label in axis._tickLevels[0]] == ["-1", "0", "1"]
    panel.update_scores(SUMMARY)
    assert axis.labelText == "r (10 s)"


# ---------------------------------------------------------------------------- the r figures (#3, #5)


def test_the_two_r_figures_are_worded_as_decode_words_them(qtbot):
    """"dynamic r (rolling, …): +0.213" above "live dynamic r on the same frames: decoder 0.194": no window,
    the whole run called live, two number formats."""
    from eegmusic.gui.mel_panel import MelPanel

    panel = MelPanel()
    qtbot.addWidget(panel)
    panel.update_mel(np.zeros((128, 10), np.float32), np.zeros((128, 10), np.float32), 0.213, now=1.0)
    panel.update_scores(SUMMARY)
    assert panel.r_label.text() == "dynamic r, last 10 s: 0.213"
    assert panel.baseline_label.text() == ("dynamic r, whole run: decoder 0.194, global-mean baseline 0.003, "
                                           "song-mean baseline -0.006")
    panel.update_mel(np.zeros((128, 10), np.float32), np.zeros((128, 10), np.float32), -0.05, now=2.0)
    assert panel.r_label.text() == "dynamic r, last 10 s: -0.050"
    # the live figure's control beside it (the whole run's is on the line below), taken on the r's frames
    # with it: the snapshot's, not the summary's, published about once a second, up to a second of frames
    # apart from the r beside it
    panel.update_mel(np.zeros((128, 10), np.float32), np.zeros((128, 10), np.float32), -0.05, now=3.0,
                     shifted_r=0.012)
    assert panel.r_label.text() == "dynamic r, last 10 s: -0.050 (shifted-stimulus control 0.012)"
    panel.update_scores({**SUMMARY, "shifted_stimulus_dynamic_r": 0.5})
    assert panel.r_label.text() == "dynamic r, last 10 s: -0.050 (shifted-stimulus control 0.012)"
    # a song of the model's training music: said in short words, in full on hover, as decode says it
    panel.update_scores({**SUMMARY, "truth": {"trained_music": [21], "training_split": "block"}})
    assert panel.baseline_label.text().endswith("song-mean baseline -0.006 — trained music: not an "
                                                "unheard-music score")
    assert "song 21's music is among the model's training targets" in panel.baseline_label.toolTip()


def test_the_r_figures_say_they_are_frozen_while_the_stream_is_stalled(qtbot):
    from eegmusic.gui.mel_panel import FROZEN_STYLE, MelPanel
    from eegmusic.gui.panel import PanelView

    panel = MelPanel()
    qtbot.addWidget(panel)
    snapshot = SimpleNamespace(mel=np.zeros((128, 10), np.float32), truth_mel=np.zeros((128, 10), np.float32),
                               dynamic_r=0.3, shifted_dynamic_r=None, frame_index=10)
    live = PanelView(snapshot=snapshot, eeg=None, eeg_key=None, summary=SUMMARY)
    stalled = PanelView(snapshot=snapshot, eeg=None, eeg_key=None, summary=SUMMARY, silence="stalled")
    assert panel.redraw_key(live) != panel.redraw_key(stalled)   # the panel redraws when the stream stops
    panel.draw(live, 1.0)
    panel.draw(stalled, 2.0)
    assert panel.r_label.text() == "dynamic r, last 10 s: 0.300 — frozen: stream stalled"
    assert panel.baseline_label.text().endswith("— frozen: stream stalled")
    assert panel.r_label.styleSheet() == FROZEN_STYLE
    assert panel.decoded_plot.getPlotItem().titleLabel.text == "decoded mel — frozen"
    assert len(panel.r_curve.getData()[0]) == 1   # a frozen r adds no point to the history
    panel.draw(live, 3.0)
    assert "frozen" not in panel.r_label.text() and panel.r_label.styleSheet() == ""
    assert panel.decoded_plot.getPlotItem().titleLabel.text == "decoded mel"


# ---------------------------------------------------------------------------- status bar (#5, #11)


@pytest.mark.parametrize(("health", "word", "colour"), [
    (_health("stalled"), "stalled", "#b06000"),
    (_health("lost", connected=False), "lost", "#c01e1e"),
    (_health("connected"), "stalled", "#b06000"),   # the decode published nothing new: no samples either
])
def test_the_status_bar_speaks_the_inlet_s_words(qtbot, health, word, colour):
    """Every silence over 1 s read "LOST", while the counters said "stalls 1, losses 0"."""
    from eegmusic.gui.status import StreamStatus
    from PySide6 import QtWidgets

    bar = QtWidgets.QStatusBar()
    qtbot.addWidget(bar)
    status = StreamStatus(bar)
    status.reset(now=0.0)
    snapshot = SimpleNamespace(health=health, counters={}, error=None, running=True)
    status.show(snapshot, "cap-1", 3.0, [])
    text = status.health_label.text()
    assert f"stream 'cap-1' {word} — no data for 3.0 s; panels frozen" in text and "LOST" not in text, text
    assert status.silence(snapshot, 3.0) == word and status.health_label.styleSheet() == f"color: {colour}"
    status.show_text("stopped")   # "stopped" was drawn in the last state's green or red
    assert status.health_label.styleSheet() == ""


def test_a_replay_that_said_it_ended_reads_ended_not_lost(qtbot):
    """A replay that finished stayed "LOST … waiting for it to return" for good, in red."""
    from eegmusic.gui.status import StreamStatus
    from PySide6 import QtWidgets

    bar = QtWidgets.QStatusBar()
    qtbot.addWidget(bar)
    status = StreamStatus(bar)
    status.reset(now=0.0)
    snapshot = SimpleNamespace(health=_health("lost", connected=False, ended=True), counters={}, error=None,
                               running=True)
    status.show(snapshot, "cap-1", 3.0, [])
    text = status.health_label.text()
    assert text.startswith("■ stream 'cap-1' ended (its replay finished) — no data for 3.0 s"), text
    assert status.health_label.styleSheet() == "color: #505050"


# ---------------------------------------------------------------------------- stats panel (#5, #10)


def test_the_stream_s_state_rate_and_jitter_come_first_in_the_counters(qtbot):
    """They came last, below the fold of the counters' scroll area; the health arrives after the counters."""
    from eegmusic.gui.stats_panel import StatsPanel

    panel = StatsPanel()
    qtbot.addWidget(panel)
    panel.update_stats({}, {"windows": 3, "drops": 0, "stalls": 1}, None)
    panel.update_stats({}, {"windows": 4, "drops": 0, "stalls": 1}, _health("stalled"))
    grid = panel.counter_grid
    names = [grid.itemAtPosition(row, 0).widget().text() for row in range(grid.rowCount())
             if grid.itemAtPosition(row, 0) is not None]
    assert names[:5] == ["stream", "rate (Hz)", "jitter (ms)", "windows", "drops"], names
    assert grid.itemAtPosition(0, 1).widget().text() == "stalled (3 s)"


def test_latency_rows_say_what_they_span_and_a_silent_decode_hides_the_device_s(qtbot):
    from eegmusic.decoder.latency import STAGES
    from eegmusic.gui.stats_panel import DEVICE_STAGES, StatsPanel

    panel = StatsPanel()
    qtbot.addWidget(panel)
    panel.update_stats({stage: {"p50": 1.0} for stage in STAGES}, {}, None, SUMMARY)
    tip = panel.latency.verticalHeaderItem(STAGES.index("audio_to_eeg")).toolTip()
    assert tip.startswith("audio_to_eeg is stimulus time, not processing: the model's audio lag, the vocoder "
                          "delay 46.4 ms (look-ahead and synthesis overlap) and smoothing 0.0 ms"), tip
    assert panel.latency.item(0, 0).toolTip() == tip
    row = STAGES.index("ready_to_inferred")
    assert panel.latency.verticalHeaderItem(row).toolTip() == (
        "window → inferred: from the stream stage made the window to the model's output in host memory "
        "(summary key: latency_ms.ready_to_inferred)")
    estimated = panel.latency.verticalHeaderItem(STAGES.index("queued_to_dac")).toolTip()
    assert "An estimate: the audio queued" in estimated, estimated
    assert set(DEVICE_STAGES) == {"buffered_to_queued", "queued_to_dac", "buffered_to_dac", "arrival_to_dac",
                                  "audio_to_dac"}
    panel.set_silent(True)
    hidden = {stage for row, stage in enumerate(STAGES) if panel.latency.isRowHidden(row)}
    assert hidden == set(DEVICE_STAGES)
    panel.set_silent(False)
    assert not any(panel.latency.isRowHidden(row) for row in range(len(STAGES)))


# ---------------------------------------------------------------------------- waveform model (#6)


def test_a_waveform_model_s_mel_panel_says_why_it_is_empty(qtbot):
    from eegmusic.gui.mel_panel import NO_MEL_TEXT, MelPanel

    panel = MelPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.show_model_output("audio")
    assert panel.no_mel_label.isVisible() and panel.no_mel_label.text() == NO_MEL_TEXT
    assert "outputs audio directly" in NO_MEL_TEXT and "no --truth scoring" in NO_MEL_TEXT
    assert not panel.decoded_plot.isVisible() and not panel.r_label.isVisible()
    # a truth kept to play the stimulus (--listen true): the snapshot's true mel has no frames
    panel.update_mel(np.zeros((128, 0), np.float32), np.zeros((128, 0), np.float32), None, 1.0)
    assert not panel.truth_plot.isVisible() and not panel.r_plot.isVisible()
    panel.show_model_output("mel_db")   # the next start, with a mel model
    assert not panel.no_mel_label.isVisible() and panel.decoded_plot.isVisible()


# ---------------------------------------------------------------------------- stream picker (#7)


def _bar(qtbot):
    from eegmusic.gui.controls import ControlBar, Settings

    bar = ControlBar(Settings(stream="typed"), spawn=lambda *args: None)
    qtbot.addWidget(bar)
    return bar


def _listed():
    from eegmusic.stream.resolve import StreamSummary

    return [StreamSummary(name="audgui11", stype="EEG", n_chans=125, sfreq=125.0, source_id="audgui11@vm",
                          channel_format="float32", hostname="vm")]


def test_the_picker_shows_a_stream_s_name_first_and_its_description_as_tooltip(qtbot):
    """The box showed "Hz, float32, source_id 'audgui11@vm')": the name was scrolled out to the left."""
    bar = _bar(qtbot)
    bar._on_streams_listed(_listed(), "")
    box = bar.stream_box
    assert box.lineEdit().cursorPosition() == 0
    index = box.findData("audgui11")
    box.setCurrentIndex(index)
    box.activated.emit(index)   # picked from the list
    assert box.currentText() == "audgui11 — 125 ch @ 125 Hz" and box.lineEdit().cursorPosition() == 0
    assert box.toolTip() == _listed()[0].describe()
    assert bar.stream_name() == "audgui11"


def test_refresh_stays_disabled_when_a_listing_ends_while_decoding(qtbot):
    """A listing scheduled at opening ended after the start and enabled Refresh beside disabled pickers."""
    bar = _bar(qtbot)
    bar.show_state("running")
    bar._on_streams_listed(_listed(), "")
    assert not bar.refresh_button.isEnabled() and bar.refresh_button.text() == "Refresh"
    assert bar.stream_box.lineEdit().cursorPosition() == 0
    bar.show_state("stopped")
    assert bar.refresh_button.isEnabled()
    bar._on_streams_listed(_listed(), "")
    assert bar.refresh_button.isEnabled()


def test_a_long_run_line_wraps_without_covering_the_mel_plots(qtbot):
    """A baseline's reason wraps the run line onto several lines: the panel asked for the height of one, and
    on a short window the r label was drawn over the mel plots' time axis."""
    from eegmusic.gui.mel_panel import MEL_MIN_HEIGHT, R_PLOT_MIN_HEIGHT

    window = _window(qtbot, 1024, 700)
    window._body.setSizes([544, 480])   # as wide as 125 channels of EEG leave it
    panel = window.mel_panel
    # the demo's case: a control and two reasons, in the label's short words
    reason = {"baseline_constant": ["global_mean"], "shifted_stimulus_dynamic_r_total": 0.006,
              "baseline_dynamic_r_total": {"global_mean": None, "song_mean": None}}
    panel.update_scores(dict(SUMMARY, **reason))
    qtbot.wait(20)
    wrapped = panel.baseline_label.heightForWidth(panel.width())
    assert wrapped > 2 * panel.r_label.height()   # several lines
    least = MEL_MIN_HEIGHT + panel.r_label.minimumSizeHint().height() + wrapped + R_PLOT_MIN_HEIGHT
    assert panel.minimumSizeHint().height() >= least
    assert panel.height() >= least and window.height() <= 700


def test_the_eeg_header_gives_way_on_a_narrow_window(qtbot, rng):
    """With EEG (and flagged channels) its header's texts held the EEG column at 600 px: a 1024-px window
    came out 1089 px wide and cut the counters' values to "conne…". They now give way, whole in tooltips."""
    from eegmusic.gui.eeg_panel import EEGPanel

    panel = EEGPanel()
    qtbot.addWidget(panel)
    eeg = rng.normal(0.0, 10.0, (125, 1250))
    eeg[3:10] = 0.0                                   # flat channels: a long "flagged: …" header text
    panel.update_eeg(eeg, 125.0, [f"E{i + 1}" for i in range(125)])
    assert panel.flag_label.text().startswith("flagged: E4")
    assert panel.minimumSizeHint().width() < 400
    for label in (panel.title, panel.flag_label, panel.scale_label):
        assert label.toolTip() == label.text() != ""
