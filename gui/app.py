"""The dashboard's main window: controls on top, signal, spectrum, mel and stats panels below.

What the window shows is a :class:`decoder.snapshot.SnapshotSource`. From ``eegmusic gui`` that is
an ``eegmusic decode`` in its own process (:mod:`gui.attach`: started by the window, or one it
attached to), read through shared memory, so Qt drawing never holds the decoder's GIL. An
in-process :class:`decoder.pipeline.LivePipeline` (``Settings(isolated=False)``, ``run_dashboard``)
is still accepted. The window never waits on either: starting and stopping (which resolve streams,
load the model and join threads or processes) run in short-lived helper threads that report back
through queued Qt signals, and a :class:`QtCore.QTimer` (at most 30 Hz) pulls
``pipeline.snapshot()`` — a non-blocking copy — and redraws one panel whose data changed per tick
(the one waiting longest), so no single tick keeps the event loop busy for long.
When the stream is lost the snapshot stops advancing, the panels freeze in place and the status bar
says so; when the stream returns they resume. Closing the window stops every thread it started.

(Over 500 lines: controls, the start/stop/attach life cycle and the polling share one window's
state; the panels, the attach machinery and the snapshot block live in their own modules.)
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from eegmusic.decoder.limiter import LevelledSink
from eegmusic.gui.attach import AttachedDecode
from eegmusic.gui.eeg_panel import EEGPanel
from eegmusic.gui.mel_panel import MelPanel
from eegmusic.gui.panel import PanelScheduler, PanelSlot, PanelView
from eegmusic.gui.spectral_panel import SpectralPanel
from eegmusic.gui.stats_panel import StatsPanel
from eegmusic.stream.errors import ConfigError, EEGMusicError
from PySide6 import QtCore, QtGui, QtWidgets

log = logging.getLogger(__name__)

MAX_REFRESH_HZ = 30.0
DEFAULT_REFRESH_HZ = 30.0
"""Snapshot polls per second (at most 30); each poll redraws at most one panel."""

PANELS: tuple[PanelSlot, ...] = (
    PanelSlot("eeg_panel", EEGPanel, column=0, stretch=1),
    PanelSlot("mel_panel", MelPanel, column=1, stretch=5),
    PanelSlot("spectral_panel", SpectralPanel, column=1, stretch=3),
    PanelSlot("stats_panel", StatsPanel, column=1, stretch=3),
)
"""The window's panels, one line each (:mod:`gui.panel`): the left column holds the EEG at full
height, the right one stacks the rest top to bottom. Each panel says when it redraws."""
COLUMN_STRETCH = (3, 2)
"""Width shares of the left and right columns."""
LOST_AFTER_S = 1.0
"""The status bar calls the stream lost when no new sample arrived for this long."""

NO_DEVICE = -1


@dataclass
class Settings:
    """What the user chose (from the command line or the controls) before pressing start.

    ``extra`` holds further :class:`decoder.pipeline.PipelineConfig` fields (``hop_s``,
    ``resolve_timeout_s``, ``lsl_out``, ...), passed through unchanged. ``isolated`` runs the
    decode in its own process (``eegmusic gui`` does); ``vocoder`` picks the streaming vocoder.
    """

    stream: str | None = None
    model: str | None = None
    truth: str | None = None
    no_audio: bool = False
    audio_device: int | str | None = None
    isolated: bool = False
    vocoder: str | None = None
    listen: str = "decoded"
    extra: dict = field(default_factory=dict)


def output_devices() -> tuple[list[tuple[int, str]], str | None]:
    """List the audio output devices, or say why there are none.

    Returns
    -------
    devices : list of (index, name)
        Devices with at least one output channel, as sounddevice numbers them.
    reason : str or None
        Why the list is empty (PortAudio missing, no device), else None.
    """
    from eegmusic.decoder import audio

    try:
        devices = audio.output_devices()
        if not devices:  # PortAudio lists devices once: a sound server started since is seen on a re-scan
            audio.refresh_devices()
            devices = audio.output_devices()
    except EEGMusicError as error:
        return [], str(error)
    except Exception as error:  # sounddevice's PortAudioError on a broken host API
        return [], f"audio devices could not be listed ({error}); decoding still runs, silently"
    if not devices:
        return [], ("no audio output device found; start PulseAudio or connect a sound card "
                    "(decoding still runs, silently)")
    return devices, None


def snapshot_key(eeg, health) -> tuple:
    """A cheap fingerprint that changes when new samples arrived."""
    n_samples = getattr(health, "n_samples", None)
    if eeg is None:
        return (n_samples,)
    eeg = np.asarray(eeg)
    last = eeg[:, -1].tobytes() if eeg.ndim == 2 and eeg.shape[1] else b""
    return (n_samples, eeg.shape, last)


class MainWindow(QtWidgets.QMainWindow):
    """The dashboard window.

    Parameters
    ----------
    settings : Settings, optional
        Initial stream, model, truth folder and audio choice (from the command line).
    refresh_hz : float
        Snapshot polls per second, at most 30.
    """

    _started = QtCore.Signal(object)
    _start_failed = QtCore.Signal(str)
    _stopped = QtCore.Signal()
    _streams_listed = QtCore.Signal(object, str)
    closed = QtCore.Signal()
    """Emitted once the window has closed and stopped every thread."""
    started = QtCore.Signal()
    """Emitted (in the GUI thread) when a pipeline has started and the panels follow it."""

    def __init__(self, settings: Settings | None = None, *, refresh_hz: float = DEFAULT_REFRESH_HZ):
        super().__init__()
        if not 0 < refresh_hz <= MAX_REFRESH_HZ:
            raise ConfigError(f"refresh rate {refresh_hz} Hz is outside (0, {MAX_REFRESH_HZ:g}]; "
                              "pass e.g. 20")
        self.settings = settings or Settings()
        self._gain_sink: LevelledSink | None = None
        self.pipeline = None
        self.last_snapshot = None
        self.last_error: str | None = None
        self.start_error: Exception | None = None
        """Why the last start failed (re-raised by :func:`run_dashboard`)."""
        self.error_box: QtWidgets.QMessageBox | None = None
        self.state = "stopped"
        self.redraw_ms: collections.deque[float] = collections.deque(maxlen=200)
        self.poll_ms: collections.deque[float] = collections.deque(maxlen=200)
        self._helpers: list[threading.Thread] = []
        self._helper_lock = threading.Lock()
        self._pending_pipeline = None
        self._closing = False
        self._eeg_key = None
        self._last_new_sample = None
        self._scheduler = PanelScheduler()
        self._tick = 0
        self._shown_error: str | None = None

        self.setWindowTitle("eegmusic — live dashboard")
        self._build_controls()
        self._build_panels()
        self._build_status_bar()
        self._started.connect(self._on_started)
        self._start_failed.connect(self._on_start_failed)
        self._stopped.connect(self._on_stopped)
        self._streams_listed.connect(self._on_streams_listed)

        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(int(round(1000.0 / refresh_hz)))
        self.timer.timeout.connect(self._poll)
        self._set_state("stopped")
        self.resize(1500, 950)

    # ------------------------------------------------------------------ building
    def _build_controls(self) -> None:
        self.stream_box = QtWidgets.QComboBox()
        self.stream_box.setEditable(True)
        self.stream_box.setMinimumWidth(260)
        self.stream_box.setToolTip("LSL stream to decode (type a name, or refresh to list the visible ones)")
        if self.settings.stream:
            self.stream_box.addItem(self.settings.stream, self.settings.stream)
        self.refresh_button = QtWidgets.QPushButton("Refresh")
        self.refresh_button.setToolTip("list the LSL streams visible from this machine")
        self.refresh_button.clicked.connect(self.refresh_streams)

        self.model_edit = QtWidgets.QLineEdit(self.settings.model or "")
        self.model_edit.setPlaceholderText("model.onnx")
        self.model_edit.setMinimumWidth(220)
        self.model_button = QtWidgets.QPushButton("Model…")
        self.model_button.clicked.connect(self.choose_model)

        self.start_button = QtWidgets.QPushButton("Start")
        self.start_button.setMinimumWidth(90)
        self.start_button.clicked.connect(self.toggle)

        self.audio_box = QtWidgets.QComboBox()
        self.audio_box.setMinimumWidth(200)
        self.volume = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.volume.setRange(0, 100)
        self.volume.setValue(80)
        self.volume.setFixedWidth(110)
        self.mute = QtWidgets.QCheckBox("Mute")
        self.volume.valueChanged.connect(self._apply_gain)
        self.mute.toggled.connect(self._apply_gain)
        self.listen_box = QtWidgets.QComboBox()
        for mode, label in (("decoded", "A: decoded"), ("true", "B: true stimulus"), ("both", "A+B")):
            self.listen_box.addItem(label, mode)
        self.listen_box.setCurrentIndex(max(self.listen_box.findData(self.settings.listen), 0))
        self.listen_box.currentIndexChanged.connect(self._apply_listen)
        self._fill_audio_devices()

        top = QtWidgets.QWidget()
        row = QtWidgets.QHBoxLayout(top)
        row.setContentsMargins(6, 4, 6, 4)
        for widget in (QtWidgets.QLabel("Stream"), self.stream_box, self.refresh_button,
                       QtWidgets.QLabel("Model"), self.model_edit, self.model_button, self.start_button):
            row.addWidget(widget)
        row.addSpacing(16)
        for widget in (QtWidgets.QLabel("Audio"), self.audio_box, QtWidgets.QLabel("Volume"), self.volume,
                       self.mute, QtWidgets.QLabel("Listen"), self.listen_box):
            row.addWidget(widget)
        row.addStretch(1)
        self.controls = top

    def _fill_audio_devices(self) -> None:
        devices, reason = output_devices()
        self.audio_box.clear()
        self.audio_reason = reason
        if reason is not None:
            self.audio_box.addItem("no audio device", NO_DEVICE)
            for widget in (self.audio_box, self.volume, self.mute):
                widget.setEnabled(False)
                widget.setToolTip(reason)
            return
        self.audio_box.addItem("default output", None)
        for index, name in devices:
            self.audio_box.addItem(f"{index}: {name}", index)
        self.audio_box.addItem("none (silent)", NO_DEVICE)
        if self.settings.no_audio:
            self.audio_box.setCurrentIndex(self.audio_box.count() - 1)
        elif self.settings.audio_device is not None:
            found = self.audio_box.findData(self.settings.audio_device)
            if found >= 0:
                self.audio_box.setCurrentIndex(found)
        self.audio_box.setToolTip("where the decoded music plays (applies at the next start)")
        self.volume.setToolTip("output volume")
        self.mute.setToolTip("silence the output; decoding goes on")

    def _build_panels(self) -> None:
        """Build every panel of :data:`PANELS` into its column (``self.<attribute>`` holds it)."""
        self.panels: dict[str, QtWidgets.QWidget] = {}
        columns = [QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical) for _ in COLUMN_STRETCH]
        for slot in PANELS:
            panel = slot.factory()
            setattr(self, slot.attribute, panel)
            self.panels[slot.attribute] = panel
            column = columns[slot.column]
            column.addWidget(panel)
            column.setStretchFactor(column.count() - 1, slot.stretch)
        body = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        for index, (column, stretch) in enumerate(zip(columns, COLUMN_STRETCH, strict=True)):
            body.addWidget(column)
            body.setStretchFactor(index, stretch)
        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.controls)
        layout.addWidget(body, 1)
        self.setCentralWidget(central)

    def _build_status_bar(self) -> None:
        self.health_label = QtWidgets.QLabel("")
        self.gui_label = QtWidgets.QLabel("")
        self.statusBar().addWidget(self.health_label, 1)
        self.statusBar().addPermanentWidget(self.gui_label)

    # ------------------------------------------------------------------ controls
    def refresh_streams(self) -> None:
        """List the visible LSL streams in a helper thread (the window stays live meanwhile)."""
        self.refresh_button.setEnabled(False)
        self.refresh_button.setText("Looking…")
        self._spawn(self._list_streams_worker, "gui-list-streams")

    def _list_streams_worker(self) -> None:
        from eegmusic.stream.resolve import list_streams

        try:
            streams = list_streams(timeout=1.0)
        except Exception as error:  # a broken network stack must not kill the GUI
            log.warning("listing LSL streams failed: %s", error)
            self._streams_listed.emit([], str(error))
            return
        self._streams_listed.emit(streams, "")

    def _on_streams_listed(self, streams, error: str) -> None:
        self.refresh_button.setEnabled(True)
        self.refresh_button.setText("Refresh")
        current = self.stream_box.currentText()
        self.stream_box.clear()
        for summary in streams:
            if getattr(summary, "stype", "EEG") not in ("EEG", ""):
                continue  # markers and decoded output are not decodable input
            self.stream_box.addItem(summary.describe(), summary.name)
        if current and self.stream_box.findData(current) < 0:
            self.stream_box.insertItem(0, current, current)
        if current:
            self.stream_box.setCurrentIndex(self.stream_box.findData(current))
        n_found = self.stream_box.count()
        self.statusBar().showMessage(
            f"listing streams failed: {error}" if error else f"{len(streams)} LSL stream(s) visible", 4000)
        log.info("%d EEG stream(s) listed", n_found)

    def stream_name(self) -> str | None:
        """The stream chosen in the picker (its name), or None."""
        index = self.stream_box.currentIndex()
        text = self.stream_box.currentText().strip()
        if index >= 0 and self.stream_box.itemText(index) == text and self.stream_box.itemData(index):
            return str(self.stream_box.itemData(index))
        return text or None

    def choose_model(self) -> None:
        """Pick a model file with a file dialog."""
        start = str(Path(self.model_edit.text()).parent) if self.model_edit.text() else str(Path.cwd())
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Choose a decoder model", start,
                                                        "ONNX models (*.onnx);;All files (*)")
        if path:
            self.model_edit.setText(path)

    def toggle(self) -> None:
        """Start when stopped, stop when running."""
        if self.state in ("running",):
            self.stop()
        elif self.state == "stopped":
            self.start()

    # ------------------------------------------------------------------ start / stop
    def pipeline_config(self):
        """Build the ``PipelineConfig`` from the controls (raises ConfigError on a missing choice)."""
        from eegmusic.decoder.pipeline import PipelineConfig

        stream = self.stream_name()
        if not stream:
            raise ConfigError("no stream chosen; press Refresh and pick one, or type its name")
        model = self.model_edit.text().strip()
        if not model:
            raise ConfigError("no model chosen; press 'Model…' and pick an .onnx file")
        device = self.audio_box.currentData()
        no_audio = self.settings.no_audio or device == NO_DEVICE or self.audio_reason is not None
        extra = dict(self.settings.extra)
        if self.settings.vocoder is not None:
            extra["vocoder_method"] = self.settings.vocoder
        if self.settings.listen != "decoded":
            extra["listen"] = self.settings.listen
        return PipelineConfig(
            stream_name=stream, model_path=model, truth_dir=self.settings.truth,
            no_audio=no_audio, audio_device=None if no_audio else device, **extra,
        )

    def start(self) -> None:
        """Start the pipeline in a helper thread; report failure in a dialog."""
        if self.state != "stopped":
            return
        self.last_error = self.start_error = None
        try:
            config = self.pipeline_config()
        except EEGMusicError as error:
            self.show_error(str(error))
            return
        self._set_state("starting")
        self._spawn(self._start_worker, "gui-start", config)

    def run_pipeline(self, pipeline) -> None:
        """Start and show a pipeline built elsewhere (e.g. by ``eegmusic demo``).

        Its configuration fills the pickers, so Stop then Start decodes the same stream again with a
        pipeline of the window's own (whose volume the window controls). The volume and mute act
        only on a pipeline the window built: this one keeps its own audio output.
        """
        if self.state != "stopped":
            raise ConfigError("the dashboard is already decoding; stop it first")
        config = pipeline.config
        self.stream_box.setEditText(config.stream_name or "")
        self.model_edit.setText(str(config.model_path or ""))
        self.settings.truth = None if config.truth_dir is None else str(config.truth_dir)
        self.settings.no_audio = bool(config.no_audio)
        self.last_error = self.start_error = None
        self._set_state("starting")
        self._spawn(self._start_worker, "gui-start", config, pipeline)

    def attach(self, name: str) -> None:
        """Show a decode already running in another process (``eegmusic decode --publish NAME``).

        Closing the window, or Stop, lets go of it; the decode goes on.
        """
        if self.state != "stopped":
            raise ConfigError("the dashboard is already showing a decode; stop it first")
        self.last_error = self.start_error = None
        self._set_state("starting")
        self._spawn(self._attach_worker, "gui-attach", name)

    def _attach_worker(self, name: str) -> None:
        try:
            attached = AttachedDecode(name)
        except EEGMusicError as error:
            self.start_error = error
            self._start_failed.emit(str(error))
            return
        with self._helper_lock:
            self._pending_pipeline = attached
        self._started.emit(attached)

    def _start_worker(self, config, pipeline=None) -> None:
        sink = None
        try:
            if pipeline is None and self.settings.isolated:
                from eegmusic.gui.attach import spawn_decode

                # the decode runs in its own process; the volume travels through its snapshot block
                pipeline = spawn_decode(config, gain=self.gain())
            elif pipeline is None:
                from eegmusic.decoder.pipeline import LivePipeline

                if not config.no_audio and config.wav_path is None:
                    from eegmusic.decoder.audio import SoundDeviceSink
                    from eegmusic.decoder.limiter import LevelSettings, OutputLevel
                    from eegmusic.decoder.melspec import AUDIO_SFREQ

                    # levelled like decode's own output; the volume and mute act through its gain
                    sink = LevelledSink(SoundDeviceSink(device=config.audio_device),
                                        OutputLevel(AUDIO_SFREQ, LevelSettings(agc=config.agc)), self.gain())
                pipeline = LivePipeline(config, sink=sink)
            self._gain_sink = sink
            sink = None  # the pipeline owns it now (and closes it when start fails)
            pipeline.start()
        except EEGMusicError as error:
            if sink is not None:
                sink.close()
            self.start_error = error
            self._start_failed.emit(str(error))
            return
        except Exception as error:  # report, never kill the window
            if sink is not None:
                sink.close()
            self.start_error = error
            log.exception("starting the pipeline failed")
            self._start_failed.emit(f"{type(error).__name__}: {error}")
            return
        with self._helper_lock:
            self._pending_pipeline = pipeline
        log.info("pipeline started on %r", config.stream_name)
        self._started.emit(pipeline)

    def _on_started(self, pipeline) -> None:
        log.debug("dashboard follows the pipeline")
        with self._helper_lock:
            self._pending_pipeline = None
        if self._closing:
            pipeline.stop()
            return
        self.pipeline = pipeline
        if isinstance(pipeline, AttachedDecode):
            settings = pipeline.config
            if not pipeline.owned:  # show what the decode is, and the volume it plays at
                self.stream_box.setEditText(settings.stream_name or pipeline.name)
                self.model_edit.setText(settings.model_path or "")
                self.settings.no_audio = bool(settings.no_audio)
                self.volume.blockSignals(True)
                self.volume.setValue(int(round(100 * pipeline.gain)))
                self.volume.blockSignals(False)
        elif self._gain_sink is None and isinstance(pipeline.sink, LevelledSink):
            self._gain_sink = pipeline.sink  # a pipeline built elsewhere (the demo): its volume is ours too
        self._eeg_key = None
        self._scheduler.reset()
        self._last_new_sample = time.monotonic()
        self._shown_error = None
        self._set_state("running")
        self._apply_gain()
        self.timer.start()
        self.started.emit()

    def _on_start_failed(self, message: str) -> None:
        self._gain_sink = None
        self._set_state("stopped")
        self.show_error(message)

    def stop(self) -> None:
        """Stop the pipeline in a helper thread; the last picture stays on screen."""
        if self.state != "running" or self.pipeline is None:
            return
        self.timer.stop()
        self._set_state("stopping")
        pipeline, self.pipeline = self.pipeline, None
        self._spawn(self._stop_worker, "gui-stop", pipeline)

    def _stop_worker(self, pipeline) -> None:
        try:
            pipeline.stop()
        except Exception:
            log.exception("stopping the pipeline failed")
        self._stopped.emit()

    def _on_stopped(self) -> None:
        self._gain_sink = None
        if not self._closing:
            self._set_state("stopped")

    def _spawn(self, target, name: str, *args) -> None:
        with self._helper_lock:
            self._helpers = [t for t in self._helpers if t.is_alive()]
            thread = threading.Thread(target=target, args=args, name=name, daemon=True)
            self._helpers.append(thread)
        thread.start()

    def _set_state(self, state: str) -> None:
        self.state = state
        labels = {"stopped": "Start", "starting": "Starting…", "running": "Stop", "stopping": "Stopping…"}
        if isinstance(self.pipeline, AttachedDecode) and not self.pipeline.owned:
            labels["running"] = "Detach"  # the decode was started elsewhere: it goes on
        self.start_button.setText(labels[state])
        self.start_button.setEnabled(state in ("stopped", "running"))
        idle = state == "stopped"
        for widget in (self.stream_box, self.refresh_button, self.model_edit, self.model_button):
            widget.setEnabled(idle)
        self.audio_box.setEnabled(idle and self.audio_reason is None)
        self._update_volume_controls(state)
        self._update_listen_control(state)
        if state == "stopped":
            self.health_label.setText("stopped" + (f" — {self.last_error}" if self.last_error else ""))
        elif state == "starting":
            self.health_label.setText(
                f"starting: resolving stream {self.stream_name()!r}, loading the model…")

    # ------------------------------------------------------------------ audio gain
    def _update_volume_controls(self, state: str) -> None:
        if self.audio_reason is not None:
            return  # disabled for good, the tooltip says why
        controllable = self._gain_sink is not None or isinstance(self.pipeline, AttachedDecode)
        if state == "running" and (not controllable or self.settings.no_audio):
            reason = ("this pipeline decodes without sound" if self.settings.no_audio else
                      "this pipeline was started outside the dashboard and plays at its own volume; "
                      "Stop and Start here to control it")
            for widget in (self.volume, self.mute):
                widget.setEnabled(False)
                widget.setToolTip(reason)
        else:
            self.volume.setEnabled(True)
            self.mute.setEnabled(True)
            self.volume.setToolTip("output volume")
            self.mute.setToolTip("silence the output; decoding goes on")

    def _can_switch_listen(self) -> bool:
        pipeline = self.pipeline
        if isinstance(pipeline, AttachedDecode):
            return pipeline.can_switch_listen
        return pipeline is not None and pipeline.config.listen != "decoded"

    def _update_listen_control(self, state: str) -> None:
        running = state == "running"
        if running and self._can_switch_listen():
            self.listen_box.setEnabled(True)
            self.listen_box.setToolTip("A/B: the decoded sound, the true stimulus at the same EEG time, "
                                       "or both")
            mode = (self.pipeline.listen if isinstance(self.pipeline, AttachedDecode)
                    else self.pipeline.config.listen)
            self.listen_box.blockSignals(True)
            self.listen_box.setCurrentIndex(max(self.listen_box.findData(mode), 0))
            self.listen_box.blockSignals(False)
        else:
            self.listen_box.setEnabled(state == "stopped")
            self.listen_box.setToolTip(
                "what to play: needs a replay with markers and --truth (the stimulus audio); the A/B "
                "switch works while decoding when the decode started with true or both")

    def _apply_listen(self, *_args) -> None:
        mode = self.listen_box.currentData()
        if self.state == "stopped":
            self.settings.listen = mode  # the next start plays it
        elif isinstance(self.pipeline, AttachedDecode):
            self.pipeline.set_listen(mode)  # one store into the decode's snapshot block
        elif self.pipeline is not None and self._can_switch_listen():
            self.pipeline.config.listen = mode  # read per chunk by the output thread

    def gain(self) -> float:
        """The linear output gain the volume slider and mute box ask for."""
        return 0.0 if self.mute.isChecked() else self.volume.value() / 100.0

    def _apply_gain(self, *_args) -> None:
        if self._gain_sink is not None:
            self._gain_sink.gain = self.gain()
        elif isinstance(self.pipeline, AttachedDecode):
            self.pipeline.set_gain(self.gain())  # one store into the decode's snapshot block

    # ------------------------------------------------------------------ errors
    def show_error(self, message: str) -> None:
        """Show a one-line reason in a non-modal dialog (the event loop keeps running)."""
        self.last_error = message
        log.warning("%s", message)
        if self.error_box is not None:
            self.error_box.close()
        box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Warning, "eegmusic", message,
                                    QtWidgets.QMessageBox.StandardButton.Ok, self)
        box.setModal(False)
        box.setWindowModality(QtCore.Qt.WindowModality.NonModal)
        box.show()
        self.error_box = box
        if self.state == "stopped":
            self.health_label.setText(f"stopped — {message}")

    # ------------------------------------------------------------------ polling
    def _poll(self) -> None:
        """Pull a snapshot and redraw at most one panel: the one that has waited longest.

        One panel per tick bounds the time the event loop is busy (the GUI stays responsive under
        load); at up to 30 ticks a second every panel still follows its data (the EEG and mel arrive
        once per hop, 10 times a second by default).
        """
        pipeline = self.pipeline
        if pipeline is None:
            return
        t0 = time.perf_counter()
        snapshot = pipeline.snapshot()
        t1 = time.perf_counter()
        self.last_snapshot = snapshot
        now = time.monotonic()
        health = getattr(snapshot, "health", None)
        eeg = getattr(snapshot, "eeg", None)
        counters = getattr(snapshot, "counters", None) or {}

        has_eeg = eeg is not None and np.asarray(eeg).ndim == 2 and np.asarray(eeg).shape[1] > 1
        eeg_key = snapshot_key(eeg, health)
        if has_eeg and eeg_key != self._eeg_key:
            self._eeg_key = eeg_key
            self._last_new_sample = now
        self._tick += 1
        view = PanelView(snapshot=snapshot, eeg=eeg, eeg_key=eeg_key if has_eeg else None,
                         counters=counters, health=health, tick=self._tick)
        chosen = self._scheduler.choose(self.panels, view, now)
        if chosen is not None:
            self.panels[chosen].draw(view, now)
        self._update_status(snapshot, now)
        error = getattr(snapshot, "error", None)
        if error and error != self._shown_error and not getattr(snapshot, "running", True):
            self._shown_error = error
            self.show_error(error)
        t2 = time.perf_counter()
        self.poll_ms.append(1000.0 * (t1 - t0))
        self.redraw_ms.append(1000.0 * (t2 - t1))

    def stream_lost(self, snapshot=None, now: float | None = None) -> bool:
        """Whether the stream is lost: the pipeline says disconnected, or no sample came for a while."""
        snapshot = snapshot if snapshot is not None else self.last_snapshot
        health = getattr(snapshot, "health", None)
        if health is not None and not getattr(health, "connected", True):
            return True
        now = time.monotonic() if now is None else now
        return self._last_new_sample is not None and now - self._last_new_sample > LOST_AFTER_S

    def _update_status(self, snapshot, now: float) -> None:
        health = getattr(snapshot, "health", None)
        counters = getattr(snapshot, "counters", None) or {}
        name = self.stream_name()
        error = getattr(snapshot, "error", None)
        if not getattr(snapshot, "running", True):
            text = f"pipeline stopped: {error}" if error else "pipeline stopped"
            colour = "#c01e1e"
        elif self.stream_lost(snapshot, now):
            quiet = now - (self._last_new_sample or now)
            text = (f"✕ stream {name!r} LOST — no data for {quiet:.1f} s; panels frozen, waiting for it to "
                    f"return (reconnects {counters.get('reconnects', getattr(health, 'reconnects', 0))})")
            colour = "#c01e1e"
        else:
            rate = getattr(health, "effective_rate", float("nan"))
            parts = [f"● stream {name!r} connected", f"{rate:.1f} Hz" if np.isfinite(rate) else "rate —"]
            for key in ("windows", "drops", "gaps", "reconnects", "underruns"):
                if key in counters:
                    parts.append(f"{key} {counters[key]}")
            text = " · ".join(parts)
            colour = "#1d7a1d" if not counters.get("drops") and not counters.get("gaps") else "#b06000"
        self.health_label.setText(text)
        self.health_label.setStyleSheet(f"color: {colour}")
        if self.redraw_ms:
            self.gui_label.setText(f"panel update {np.median(self.redraw_ms):.1f} ms")

    # ------------------------------------------------------------------ closing
    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the pipeline and wait for every helper thread (called when the window closes)."""
        self._closing = True
        self.timer.stop()
        deadline = time.monotonic() + timeout
        for thread in list(self._helpers):
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._helper_lock:
            pending, self._pending_pipeline = self._pending_pipeline, None
        for pipeline in (self.pipeline, pending):
            if pipeline is not None:
                try:
                    pipeline.stop()
                except Exception:
                    log.exception("stopping the pipeline failed")
        self.pipeline = None
        if self.error_box is not None:
            self.error_box.close()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt name)
        self.shutdown()
        super().closeEvent(event)
        self.closed.emit()


def run_dashboard(pipeline, *, seconds: float | None = None, refresh_hz: float = DEFAULT_REFRESH_HZ) -> dict:
    """Decode with a pipeline built elsewhere while the dashboard shows it; return its summary.

    Starts ``pipeline`` (not yet started) from the window, closes the window ``seconds`` after the
    pipeline has started (or when the user closes it), stops the pipeline and returns
    ``pipeline.summary()``.

    Parameters
    ----------
    pipeline : decoder.pipeline.LivePipeline or gui.attach.AttachedDecode
        In-process, or a decode process the window shows (``spawn_decode``) and stops at the end.
    seconds : float, optional
        Close after this long; None waits for the user.
    refresh_hz : float
        Snapshot polls per second (at most 30).

    Raises
    ------
    EEGMusicError
        When the pipeline cannot start (the one-line reason the window showed).
    """
    import pyqtgraph as pg

    app = pg.mkQApp("eegmusic")
    # a local event loop, ended by this window only: QApplication.quit() (also called when the last
    # window closes) would leave Qt's "quit now" flag set and stop every later event loop at once
    quit_on_close = app.quitOnLastWindowClosed()
    app.setQuitOnLastWindowClosed(False)
    loop = QtCore.QEventLoop()
    window = MainWindow(refresh_hz=refresh_hz)
    window.closed.connect(loop.quit)
    # connected before the start: a start that fails at once must still close the window
    window._start_failed.connect(window.close)  # the caller reports the reason
    if seconds is not None:  # counted from the start, as a headless run counts them
        window.started.connect(lambda: QtCore.QTimer.singleShot(int(seconds * 1000), window.close))
    window.show()
    window.run_pipeline(pipeline)
    try:
        loop.exec()
    finally:
        app.setQuitOnLastWindowClosed(quit_on_close)
        window.shutdown()
    if window.start_error is not None:
        raise window.start_error
    return pipeline.summary()


def save_screenshot(widget: QtWidgets.QWidget, path: str | Path) -> Path:
    """Render ``widget`` to a PNG file, atomically (temporary file renamed over ``path``).

    Raises
    ------
    ConfigError
        When the file cannot be written.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise ConfigError(f"cannot write screenshot {path}: folder {path.parent} does not exist; "
                          "create it first")
    from eegmusic.stream.atomic import atomic_path

    with atomic_path(path) as part:   # an old screenshot stays whole until the new one is complete
        if not widget.grab().save(str(part), "PNG"):
            raise ConfigError(f"cannot write screenshot {path}; check that the folder is writable")
    return path
