"""The dashboard's main window: controls on top, signal, spectrum, mel and stats panels below.

What the window shows is a :class:`decoder.snapshot.SnapshotSource`. From ``eegmusic gui`` that is
an ``eegmusic decode`` in its own process (:mod:`gui.attach`: started by the window, or one it
attached to), read through shared memory, so Qt drawing never holds the decoder's GIL. An in-process
:class:`decoder.pipeline.LivePipeline` (``Settings(isolated=False)``, :func:`gui.run.run_dashboard`) is
still accepted. The window never waits on either: starting and stopping (which resolve streams,
load the model and join threads or processes) run in short-lived helper threads that report back
through queued Qt signals, and a :class:`QtCore.QTimer` (at most 30 Hz) pulls
``pipeline.snapshot()`` — a non-blocking copy — and redraws one panel whose data changed per tick
(the one waiting longest), so no single tick keeps the event loop busy for long.
When the stream is lost the snapshot stops advancing, the panels freeze in place and the status bar
says so; when the stream returns they resume. Closing the window stops every thread it started.

The window's parts live in their own modules: the control row (:mod:`gui.controls`), the status
bar (:mod:`gui.status`), the panels (:mod:`gui.panel` and one module each), the attach machinery
(:mod:`gui.attach`), the demo's run (:mod:`gui.run`); this one holds the window's life cycle (start,
stop, attach) and its polling.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from pathlib import Path

from eegmusic.decoder.limiter import LevelledSink
from eegmusic.decoder.pipeline_config import model_output_kind
from eegmusic.gui.attach import CANCELLED, AttachedDecode
from eegmusic.gui.controls import ControlBar, Settings
from eegmusic.gui.eeg_panel import EEGPanel
from eegmusic.gui.mel_panel import MelPanel
from eegmusic.gui.panel import PanelScheduler, PanelSlot, PanelView
from eegmusic.gui.spectral_panel import SpectralPanel
from eegmusic.gui.stats_panel import StatsPanel
from eegmusic.gui.status import StreamStatus
from eegmusic.stream.errors import ConfigError, EEGMusicError
from PySide6 import QtCore, QtGui, QtWidgets

log = logging.getLogger(__name__)

QT_NOISE = ("This plugin does not support",)
"""Qt platform-plugin lines that say a window hint does nothing there (the offscreen plugin prints
one per window: "This plugin does not support propagateSizeHints()")."""


def _qt_message(kind, context, message: str) -> None:
    """Qt's own messages go through logging (they were printed past ``-q``): debug and info, and the
    platform plugin's :data:`QT_NOISE`, at debug level; warnings and worse as warnings."""
    quiet = kind in (QtCore.QtMsgType.QtDebugMsg, QtCore.QtMsgType.QtInfoMsg) or message.startswith(QT_NOISE)
    log.log(logging.DEBUG if quiet else logging.WARNING, "Qt: %s", message)


def make_app():
    """The process's QApplication (pyqtgraph's), with Qt's messages routed to :func:`_qt_message`."""
    import pyqtgraph as pg

    app = pg.mkQApp("eegmusic")
    QtCore.qInstallMessageHandler(_qt_message)
    return app


SIGNAL_CHECK_MS = 200
"""How often the event loop lets Python run, so that a signal's handler runs while Qt waits."""


@contextlib.contextmanager
def closed_by_signals(window):
    """Inside the block, Ctrl-C (SIGINT) and SIGTERM close ``window`` as its close button does.

    Python's own Ctrl-C raised KeyboardInterrupt inside whichever Qt slot ran next: Qt printed the
    traceback and carried on, so the dashboard could not be stopped from the terminal; SIGTERM
    killed it without its cleanup (the decode's temporary folder stayed). Closing the window ends
    the event loop through the usual path: the decode stops and its summary is printed. A Python
    timer runs every :data:`SIGNAL_CHECK_MS` so that the handler runs even while nothing else does.
    """
    from eegmusic.stream.cli import repeated_stop, stop_signals

    def close_window(signum: int) -> None:
        log.info("stopping on signal %d: closing the dashboard", signum)
        window.close()

    def close(signum, frame) -> None:
        # the handler only schedules: it may interrupt the main thread inside a write to stderr, where
        # logging from it could raise "reentrant call" (stream.cli.stop_signals); a repeat of the stop
        # finds the close already under way. The close runs after the slot the handler interrupted.
        if not repeated_stop():
            QtCore.QTimer.singleShot(0, lambda: close_window(signum))

    wake = QtCore.QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(SIGNAL_CHECK_MS)
    try:
        with stop_signals(close):
            yield
    finally:
        wake.stop()

MAX_REFRESH_HZ = 30.0
DEFAULT_REFRESH_HZ = 30.0
"""Snapshot polls per second (at most 30); each poll redraws at most one panel."""
SUMMARY_PERIOD_S = 1.0
"""Seconds between two reads of the decode's run summary (the scores over the run, for the panels)."""

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
RIGHT_COLUMN_MIN_PX = 600
"""The right column's least width where the window allows it: at 2/5 of a 1024-px window the latency
table's numbers were cut to a few pixels each."""


class MainWindow(QtWidgets.QMainWindow):
    """The dashboard window.

    Parameters
    ----------
    settings : Settings, optional
        Initial stream, model, truth folder and audio choice (from the command line).
    refresh_hz : float
        Snapshot polls per second, at most 30.
    """

    _started = QtCore.Signal(object, object)   # the pipeline, its model's output kind (None: unread)
    start_failed = QtCore.Signal(str)
    """Emitted with the one-line reason when a start fails (the window shows it in a dialog)."""
    _stopped = QtCore.Signal()
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
        self.last_summary: dict = {}
        """The decode's run summary as last read (at most :data:`SUMMARY_PERIOD_S` old while running)."""
        self._next_summary = 0.0
        self.last_error: str | None = None
        self.start_error: Exception | None = None
        """Why the last start failed (re-raised by :func:`gui.run.run_dashboard`)."""
        self.error_box: QtWidgets.QMessageBox | None = None
        self.state = "stopped"
        self.redraw_ms: collections.deque[float] = collections.deque(maxlen=200)
        self.poll_ms: collections.deque[float] = collections.deque(maxlen=200)
        self._helpers: list[threading.Thread] = []
        self._helper_lock = threading.Lock()
        self._pending_pipeline = None
        self._closing = False
        self._scheduler = PanelScheduler()
        self._tick = 0
        self._ended_note: str | None = None   # why the last decode stopped by itself, when not an error
        self._cancel = threading.Event()      # set to give up the start in progress
        self._cancellable = False             # the start in progress can be given up (the window's own)
        self._shown = False                   # shown once: the panels have their first sizes

        self.setWindowTitle("eegmusic — live dashboard")
        self.controls = ControlBar(self.settings, self._spawn)
        self.controls.toggled.connect(self.toggle)
        self.controls.gain_changed.connect(self._apply_gain)
        self.controls.listen_changed.connect(self._apply_listen)
        self._build_panels()
        self.status = StreamStatus(self.statusBar())
        self.controls.message.connect(self.statusBar().showMessage)
        self._started.connect(self._on_started)
        self.start_failed.connect(self._on_start_failed)
        self._stopped.connect(self._on_stopped)

        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(int(round(1000.0 / refresh_hz)))
        self.timer.timeout.connect(self._poll)
        self._set_state("stopped")
        self.resize(1500, 950)

    # ------------------------------------------------------------------ building
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
        self._columns = columns
        self._body = body = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        for index, (column, stretch) in enumerate(zip(columns, COLUMN_STRETCH, strict=True)):
            body.addWidget(column)
            body.setStretchFactor(index, stretch)
        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.controls)
        layout.addWidget(body, 1)
        self.setCentralWidget(central)

    def showEvent(self, event: QtGui.QShowEvent) -> None:  # noqa: N802 (Qt name)
        super().showEvent(event)
        if not self._shown:   # once laid out: the first sizes of the panels
            self._shown = True
            QtCore.QTimer.singleShot(0, self._fit_panels)

    def _fit_panels(self) -> None:
        """The panels' first sizes: the right column's width, then the stats panel's height."""
        widths = self._body.sizes()
        left_least = self._columns[0].minimumSizeHint().width()
        right = min(max(widths[1], RIGHT_COLUMN_MIN_PX), sum(widths) - left_least)
        if right > widths[1]:
            self._body.setSizes([sum(widths) - right, right])
        self._fit_stats_panel()

    def _fit_stats_panel(self) -> None:
        """Give the stats panel the height of all its latency rows where its column has room for that
        beside the least heights of the panels above it, which share the rest by their stretch; where it
        has not, the table scrolls. The splitter took height from every panel alike: the table scrolled
        at the default window size, and when it kept its rows by a fixed height, the mel plots shrank to
        a sliver on a short window."""
        column = self._columns[1]
        slots = [slot for slot in PANELS if slot.column == 1]
        above = [slot for slot in slots if slot.attribute != "stats_panel"]
        wanted = self.stats_panel.wanted_height()
        rest = sum(column.sizes()) - wanted
        if rest < sum(self.panels[slot.attribute].minimumSizeHint().height() for slot in above):
            return
        stretch = sum(slot.stretch for slot in above)
        column.setSizes([rest * slot.stretch // stretch if slot in above else wanted for slot in slots])

    def toggle(self) -> None:
        """Start when stopped, stop when running, give up a start in progress."""
        if self.state in ("running",):
            self.stop()
        elif self.state == "stopped":
            self.start()
        elif self.state == "starting" and self._cancellable:
            self.cancel_start()

    def cancel_start(self) -> None:
        """Give up a start whose decode has not published yet (it is stopped; the window goes back to
        stopped). A start could not be cancelled: a stream that never came kept the window at
        "Starting…" up to the stream's timeout plus 30 s."""
        self._cancel.set()

    # ------------------------------------------------------------------ start / stop
    def start(self) -> None:
        """Start the pipeline in a helper thread; report failure in a dialog."""
        if self.state != "stopped":
            return
        self._forget_last_error()
        self.start_error = None
        try:
            config = self.controls.pipeline_config()
        except EEGMusicError as error:
            self.show_error(str(error))
            return
        # only a decode in its own process can be given up while it starts
        self._begin_start(self._start_worker, "gui-start", config, cancellable=self.settings.isolated)

    def run_pipeline(self, pipeline) -> None:
        """Start and show a pipeline built elsewhere (e.g. by ``eegmusic demo``).

        Its configuration fills the pickers, so Stop then Start decodes the same stream again with a
        pipeline of the window's own (whose volume the window controls). The volume and mute act
        only on a pipeline the window built: this one keeps its own audio output.
        """
        if self.state != "stopped":
            raise ConfigError("the dashboard is already decoding; stop it first")
        config = pipeline.config
        self.controls.show_decode(config.stream_name or "", str(config.model_path or ""))
        self.settings.truth = None if config.truth_dir is None else str(config.truth_dir)
        self.controls.show_audio(bool(config.no_audio))
        self._begin_start(self._start_worker, "gui-start", config, pipeline)

    def attach(self, name: str) -> None:
        """Show a decode already running in another process (``eegmusic decode --publish NAME``).

        Closing the window, or Stop, lets go of it; the decode goes on.
        """
        if self.state != "stopped":
            raise ConfigError("the dashboard is already showing a decode; stop it first")
        self._begin_start(self._attach_worker, "gui-attach", name)

    def _begin_start(self, worker, thread_name: str, *args, cancellable: bool = False) -> None:
        """Go to "starting" and run ``worker(*args)`` in a helper thread (start, run_pipeline, attach)."""
        self._forget_last_error()
        self.start_error = self._ended_note = None
        self._cancel, self._cancellable = threading.Event(), cancellable
        self._set_state("starting")
        self._spawn(worker, thread_name, *args)

    def _attach_worker(self, name: str) -> None:
        try:
            attached = AttachedDecode(name)
        except EEGMusicError as error:
            self.start_error = error
            self.start_failed.emit(str(error))
            return
        with self._helper_lock:
            self._pending_pipeline = attached
        self._started.emit(attached, model_output_kind(attached.config.model_path))

    def _start_worker(self, config, pipeline=None) -> None:
        sink = None
        kind = model_output_kind(config.model_path)   # a waveform model: the mel panel says it has no mel
        try:
            if pipeline is None:  # the window's vocoder, smoothing and truth stay out of a waveform model's
                config = config.for_model(kind)
            if pipeline is None and self.settings.isolated:
                from eegmusic.gui.attach import spawn_decode

                # the decode runs in its own process; the volume travels through its snapshot block
                pipeline = spawn_decode(config, gain=self.controls.gain(), cancel=self._cancel)
            elif pipeline is None:
                from eegmusic.decoder.pipeline import LivePipeline

                if not config.no_audio and config.wav_path is None:
                    from eegmusic.decoder.audio import SoundDeviceSink
                    from eegmusic.decoder.limiter import LevelSettings, OutputLevel
                    from eegmusic.decoder.melspec import AUDIO_SFREQ

                    # levelled like decode's own output; the volume and mute act through its gain. The
                    # level stage first: it compiles its loop before the device starts
                    level = OutputLevel(AUDIO_SFREQ, LevelSettings(agc=config.agc))
                    sink = LevelledSink(SoundDeviceSink(device=config.audio_device), level,
                                        self.controls.gain())
                pipeline = LivePipeline(config, sink=sink)
            self._gain_sink = sink
            sink = None  # the pipeline owns it now (and closes it when start fails)
            pipeline.start()
        except EEGMusicError as error:
            if sink is not None:
                sink.close()
            self.start_error = error
            self.start_failed.emit(str(error))
            return
        except Exception as error:  # report, never kill the window
            if sink is not None:
                sink.close()
            self.start_error = error
            log.exception("starting the pipeline failed")
            self.start_failed.emit(f"{type(error).__name__}: {error}")
            return
        with self._helper_lock:
            self._pending_pipeline = pipeline
        log.info("pipeline started on %r", config.stream_name)
        self._started.emit(pipeline, kind)

    def _on_started(self, pipeline, output_kind: str | None) -> None:
        log.debug("dashboard follows the pipeline")
        with self._helper_lock:
            self._pending_pipeline = None
        if self._closing:
            pipeline.stop()
            return
        if self._cancel.is_set():   # cancelled just as it published: stopped off the GUI thread
            self._ended_note = CANCELLED
            self._set_state("stopping")
            self._spawn(self._stop_worker, "gui-stop", pipeline)
            return
        self.pipeline = pipeline
        if self.error_box is not None:   # an earlier failure's dialog is over: this one started
            self.error_box.close()
            self.error_box = None
        if isinstance(pipeline, AttachedDecode):
            settings = pipeline.config
            if not pipeline.owned:  # show what the decode is, and the volume it plays at
                self.controls.show_decode(settings.stream_name or pipeline.name, settings.model_path or "")
                # and keep it for a Start here after Detach: its sound, truth and A/B mode
                self.controls.show_audio(bool(settings.no_audio))
                self.settings.truth = settings.truth_dir
                self.settings.listen = settings.listen
                self.controls.show_gain(pipeline.gain)
        elif self._gain_sink is None and isinstance(pipeline.sink, LevelledSink):
            self._gain_sink = pipeline.sink  # a pipeline built elsewhere (the demo): its volume is ours too
        self.mel_panel.new_run()
        self.mel_panel.show_model_output(output_kind)
        self.stats_panel.set_silent(bool(pipeline.config.no_audio))
        self._scheduler.reset()
        self.status.reset(time.monotonic())
        self.last_summary, self._next_summary = {}, 0.0
        self._ended_note = None
        self._set_state("running")
        self._apply_gain()
        self.timer.start()
        self.started.emit()

    def _on_start_failed(self, message: str) -> None:
        self._gain_sink = None
        if self._cancel.is_set():   # given up by the user: no failure to report
            self.start_error = None
            self._ended_note = CANCELLED
            self._set_state("stopped")
            return
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
        detach = isinstance(self.pipeline, AttachedDecode) and not self.pipeline.owned  # it goes on
        self.controls.show_state(state, detach=detach, volume_off=self._volume_off(),
                                 listen_now=self._listen_now(),
                                 cancellable=self._cancellable)
        if state == "stopped":
            why = self.last_error or self._ended_note
            self.status.show_text("stopped" + (f" — {why}" if why else ""))
        elif state == "stopping":   # not the last 'connected' line while it stops
            self.status.show_text("stopping…")
        elif state == "starting":
            self.status.show_text(
                f"starting: resolving stream {self.controls.stream_name()!r}, loading the model…")

    # ------------------------------------------------------------------ audio gain and A/B
    def _volume_off(self) -> str | None:
        """Why the volume cannot act on the running decode, or None when it can."""
        controllable = self._gain_sink is not None or isinstance(self.pipeline, AttachedDecode)
        # the running decode's own setting (the Audio box may have overridden --no-audio); shown only
        # while one runs
        silent = self.pipeline is not None and bool(self.pipeline.config.no_audio)
        if controllable and not silent:
            return None
        return ("this pipeline decodes without sound" if silent else
                "this pipeline was started outside the dashboard and plays at its own volume; "
                "Stop and Start here to control it")

    def _can_switch_listen(self) -> bool:
        pipeline = self.pipeline
        if isinstance(pipeline, AttachedDecode):
            return pipeline.can_switch_listen
        return pipeline is not None and pipeline.config.listen != "decoded"

    def _listen_now(self) -> str | None:
        """The running decode's A/B mode when it can switch, else None."""
        if not self._can_switch_listen():
            return None
        pipeline = self.pipeline
        return pipeline.listen if isinstance(pipeline, AttachedDecode) else pipeline.config.listen

    def _apply_listen(self, mode: str) -> None:
        self.settings.listen = mode  # the next start plays it (the box shows it after a Stop)
        if self.state == "stopped":
            return
        elif isinstance(self.pipeline, AttachedDecode):
            self.pipeline.set_listen(mode)  # one store into the decode's snapshot block
        elif self.pipeline is not None and self._can_switch_listen():
            self.pipeline.config.listen = mode  # read per chunk by the output thread

    def _apply_gain(self) -> None:
        gain = self.controls.gain()
        if self._gain_sink is not None:
            self._gain_sink.gain = gain
        elif isinstance(self.pipeline, AttachedDecode):
            self.pipeline.set_gain(gain)  # one store into the decode's snapshot block

    # ------------------------------------------------------------------ errors
    def _forget_last_error(self) -> None:
        """Clear the shown error as a new start begins, saying it in the log first: the command's exit
        reports only the error that stands at the end."""
        if self.last_error:
            log.warning("%s", self.last_error)
        self.last_error = None

    def show_error(self, message: str) -> None:
        """Show a one-line reason in a non-modal dialog (the event loop keeps running)."""
        from eegmusic.stream.channels import IMPUTE_ADVICE

        if IMPUTE_ADVICE in message and not self.settings.extra.get("impute_missing"):
            # the window has no control for it: say where the option goes
            message += " (the dashboard takes it when opened: `eegmusic gui --impute-missing ...`)"
        self.last_error = message
        # said in the log only once a new start supersedes it (_forget_last_error): the one that stands
        # when the window closes is the command's error line (cli_gui), which it repeated word for word
        log.debug("shown: %s", message)
        if self.error_box is not None:
            self.error_box.close()
        box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Warning, "eegmusic", message,
                                    QtWidgets.QMessageBox.StandardButton.Ok, self)
        box.setModal(False)
        box.setWindowModality(QtCore.Qt.WindowModality.NonModal)
        box.show()
        self.error_box = box
        if self.state == "stopped":
            self.status.show_text(f"stopped — {message}")

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
        now = time.monotonic()
        if now >= self._next_summary:  # the scores over the run (and their baselines) change slowly
            self._next_summary = now + SUMMARY_PERIOD_S
            self.last_summary = pipeline.summary()
        t1 = time.perf_counter()
        self.last_snapshot = snapshot
        health, eeg, counters = snapshot.health, snapshot.eeg, snapshot.counters or {}

        eeg_key = self.status.observe(eeg, health, now)
        self._tick += 1
        view = PanelView(snapshot=snapshot, eeg=eeg, eeg_key=eeg_key, counters=counters, health=health,
                         tick=self._tick, summary=self.last_summary,
                         silence=self.status.silence(snapshot, now))
        chosen = self._scheduler.choose(self.panels, view, now)
        if chosen is not None:
            self.panels[chosen].draw(view, now)
        self.status.show(snapshot, self.controls.stream_name(), now, self.redraw_ms)
        if not snapshot.running and self.state == "running":
            # the decode stopped by itself: say why (an error in a dialog; a decode started elsewhere that
            # ended, in the status bar) and go back to stopped, where Start works again
            error = snapshot.error
            if error:   # once a run: stop() below ends the polling
                self.show_error(error)
            else:
                self._ended_note = (f"the decode published as {pipeline.name!r} has ended"
                                    if isinstance(pipeline, AttachedDecode) else
                                    f"the decode of {self.controls.stream_name()!r} has ended")
            self.stop()
        t2 = time.perf_counter()
        self.poll_ms.append(1000.0 * (t1 - t0))
        self.redraw_ms.append(1000.0 * (t2 - t1))

    def stream_lost(self, snapshot=None, now: float | None = None) -> bool:
        """Whether no new samples come: the stream is stalled or lost (:meth:`StreamStatus.silence`)."""
        snapshot = snapshot if snapshot is not None else self.last_snapshot
        return self.status.lost(snapshot, time.monotonic() if now is None else now)

    # ------------------------------------------------------------------ closing
    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the pipeline and wait for every helper thread (called when the window closes)."""
        self._closing = True
        self._cancel.set()   # a start in progress gives up at once (closing waited for it, seconds)
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


def save_screenshot(widget: QtWidgets.QWidget, path: str | Path) -> Path:
    """Render ``widget`` to a PNG file, atomically (temporary file renamed over ``path``).

    The PNG is encoded in memory and written by :func:`eegmusic.stream.atomic.write_bytes`: Qt's own
    file writer reports success when its last write fails (measured: a file size limit of 64 bytes left a
    64-byte PNG, and ``QPixmap.save`` returned true), which would have renamed a truncated picture over an
    old one.

    Raises
    ------
    ConfigError
        When the folder does not exist or the picture cannot be encoded.
    OutputError
        When the file cannot be written (full disk, permissions); the old file is left as it was.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise ConfigError(f"cannot write screenshot {path}: folder {path.parent} does not exist; "
                          "create it first")
    from eegmusic.stream.atomic import write_bytes

    encoded = QtCore.QByteArray()
    buffer = QtCore.QBuffer(encoded)
    buffer.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
    if not widget.grab().save(buffer, "PNG"):
        raise ConfigError(f"cannot encode screenshot {path}: the window could not be rendered to PNG")
    write_bytes(path, bytes(encoded))   # an old screenshot stays whole until the new one is complete
    return path
