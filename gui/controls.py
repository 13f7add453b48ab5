"""The dashboard's control row: stream and model pickers, Start/Stop, audio device, volume, mute, A/B.

:class:`ControlBar` owns the widgets above the panels and what they mean: which stream and model
are chosen, which audio device, the gain the volume slider and mute box ask for, and the
:class:`decoder.pipeline.PipelineConfig` a start builds from them. The window (``gui/app.py``) owns
the decode itself; it tells the bar its state (:meth:`ControlBar.show_state`) and hears the bar
through signals (Start/Stop pressed, gain or listen mode changed). Listing the LSL streams runs in a
helper thread the window hands in, so the window waits for it when it closes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from eegmusic.stream.errors import ConfigError, EEGMusicError
from PySide6 import QtCore, QtWidgets

log = logging.getLogger(__name__)

NO_DEVICE = -1
"""The audio picker's entry for "no device": decode silently."""

LISTEN_MODES = (("decoded", "A: decoded"), ("true", "B: true stimulus"), ("both", "A+B"))
"""The A/B picker's entries: (``decode --listen`` mode, label)."""

BUTTON_LABELS = {"stopped": "Start", "starting": "Starting…", "running": "Stop", "stopping": "Stopping…"}
"""The Start/Stop button's text in each state of the window."""

STREAM_TOOLTIP = "LSL stream to decode (type a name, or refresh to list the visible ones)"
"""The stream picker's tooltip while no listed stream is picked."""


def stream_entry(summary) -> str:
    """A listed stream as the picker shows it: its name first, then its size (``Cap-1 — 128 ch @ 1000 Hz``).

    The full description (:meth:`stream.resolve.StreamSummary.describe`, about 80 characters) showed its
    tail in the box, the name scrolled out of sight; it is the entry's tooltip instead.
    """
    from eegmusic.stream.untrusted import printable

    rate = "irregular" if summary.sfreq == 0 else f"{summary.sfreq:g} Hz"
    return f"{printable(summary.name)} — {summary.n_chans} ch @ {rate}"


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


class ControlBar(QtWidgets.QWidget):
    """The row of controls above the dashboard's panels.

    Parameters
    ----------
    settings : Settings
        The initial choices; the bar writes the listen mode chosen while stopped back into it.
    spawn : callable
        ``spawn(target, name, *args)`` runs ``target(*args)`` in a helper thread the window tracks.
    """

    toggled = QtCore.Signal()
    """Start/Stop pressed."""
    gain_changed = QtCore.Signal()
    """The volume slider or the mute box moved (read :meth:`gain`)."""
    listen_changed = QtCore.Signal(str)
    """Another A/B mode was picked: ``decoded``, ``true`` or ``both``."""
    message = QtCore.Signal(str, int)
    """A passing status-bar message and how long it shows (ms)."""
    _streams_listed = QtCore.Signal(object, str)

    def __init__(self, settings: Settings, spawn: Callable[..., None],
                 parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.settings = settings
        self._spawn = spawn

        self.state = "stopped"
        """The window's state as last shown (:meth:`show_state`)."""
        self.stream_box = QtWidgets.QComboBox()
        self.stream_box.setEditable(True)
        self.stream_box.setMinimumWidth(220)
        self.stream_box.setToolTip(STREAM_TOOLTIP)
        self.stream_box.currentIndexChanged.connect(self._show_stream_tooltip)
        # a picked entry shows its start, the name (not its end, as a line edit does)
        self.stream_box.activated.connect(lambda _index: self.stream_box.lineEdit().setCursorPosition(0))
        if settings.stream:
            self.stream_box.addItem(settings.stream, settings.stream)
        self.refresh_button = QtWidgets.QPushButton("Refresh")
        self.refresh_button.setToolTip("list the LSL streams visible from this machine")
        self.refresh_button.clicked.connect(self.refresh_streams)
        if not settings.stream:   # open with the visible streams listed, as Refresh does
            QtCore.QTimer.singleShot(0, self.refresh_streams)

        self.model_edit = QtWidgets.QLineEdit(settings.model or "")
        self.model_edit.setPlaceholderText("model.onnx")
        self.model_edit.setMinimumWidth(180)
        self.model_button = QtWidgets.QPushButton("Model…")
        self.model_button.clicked.connect(self.choose_model)

        self.start_button = QtWidgets.QPushButton("Start")
        self.start_button.setMinimumWidth(90)
        self.start_button.clicked.connect(lambda _checked=False: self.toggled.emit())

        self.audio_box = QtWidgets.QComboBox()
        self.audio_box.setMinimumWidth(200)
        self.volume = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.volume.setRange(0, 100)
        self.volume.setValue(80)
        self.volume.setMinimumWidth(110)
        self.mute = QtWidgets.QCheckBox("Mute")
        self.volume.valueChanged.connect(lambda _value: self.gain_changed.emit())
        self.mute.toggled.connect(lambda _checked: self.gain_changed.emit())
        self.listen_box = QtWidgets.QComboBox()
        for mode, label in LISTEN_MODES:
            self.listen_box.addItem(label, mode)
        self.listen_box.setCurrentIndex(max(self.listen_box.findData(settings.listen), 0))
        self.listen_box.currentIndexChanged.connect(self._on_listen_picked)
        self.audio_reason: str | None = None
        """Why there is no audio output (the audio controls stay disabled), or None."""
        self._fill_audio_devices()
        # silent output: what to play means nothing (a chosen A+B was dropped from the decode)
        self.audio_box.currentIndexChanged.connect(self._on_audio_picked)
        self._streams_listed.connect(self._on_streams_listed)

        # two rows, what is decoded above what is heard: in one row of 15 widgets the bar was 1521 px
        # wide at least, and so was the window, past a 1366- or 1440-px laptop screen
        rows = QtWidgets.QVBoxLayout(self)
        rows.setContentsMargins(6, 4, 6, 4)
        rows.setSpacing(2)
        for widgets in ((QtWidgets.QLabel("Stream"), self.stream_box, self.refresh_button,
                         QtWidgets.QLabel("Model"), self.model_edit, self.model_button, self.start_button),
                        (QtWidgets.QLabel("Audio"), self.audio_box, QtWidgets.QLabel("Volume"), self.volume,
                         self.mute, QtWidgets.QLabel("Listen"), self.listen_box)):
            row = QtWidgets.QHBoxLayout()
            for widget in widgets:
                row.addWidget(widget)
            row.addStretch(1)
            rows.addLayout(row)

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

    # ------------------------------------------------------------------ stream and model
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
        # a listing that ends after a start (one scheduled at opening) must not enable Refresh while decoding
        self.refresh_button.setEnabled(self.state == "stopped")
        self.refresh_button.setText("Refresh")
        # the picked stream's name, not the box's text: an entry shows a stream's description, and a
        # second Refresh kept that description as a name to decode
        current = self.stream_name()
        self.stream_box.clear()
        for summary in streams:
            if summary.stype not in ("EEG", ""):
                continue  # markers and decoded output are not decodable input
            self.stream_box.addItem(stream_entry(summary), summary.name)
            self.stream_box.setItemData(self.stream_box.count() - 1, summary.describe(),
                                        QtCore.Qt.ItemDataRole.ToolTipRole)
        n_found = self.stream_box.count()
        if current and self.stream_box.findData(current) < 0:
            self.stream_box.insertItem(0, current, current)
        if current:
            self.stream_box.setCurrentIndex(self.stream_box.findData(current))
        self.stream_box.lineEdit().setCursorPosition(0)   # the start of the entry: the name
        self._show_stream_tooltip()
        self.message.emit(f"listing streams failed: {error}" if error else
                          f"{n_found} EEG stream(s) listed ({len(streams)} LSL stream(s) visible)", 4000)
        log.info("%d EEG stream(s) listed", n_found)

    def _show_stream_tooltip(self, *_args) -> None:
        """The picked stream's full description as the box's tooltip (the box shows its name and size)."""
        index = self.stream_box.currentIndex()
        described = (self.stream_box.itemData(index, QtCore.Qt.ItemDataRole.ToolTipRole) if index >= 0
                     else None)
        self.stream_box.setToolTip(described or STREAM_TOOLTIP)

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

    def show_decode(self, stream: str, model: str) -> None:
        """Fill the pickers with what a decode started elsewhere decodes."""
        self.stream_box.setEditText(stream)
        self.model_edit.setText(model)

    def show_audio(self, no_audio: bool) -> None:
        """Show whether a decode started elsewhere plays sound ("none (silent)" or the default output),
        which is also what the next Start here asks for."""
        if self.audio_reason is None:
            self.audio_box.setCurrentIndex(self.audio_box.count() - 1 if no_audio else 0)

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
        # the box decides (--no-audio only picks its first choice): it showed "default output" while the
        # decode still went without sound
        no_audio = device == NO_DEVICE or self.audio_reason is not None
        extra = dict(self.settings.extra)
        if self.settings.vocoder is not None:   # typed (gui --vocoder): a waveform model refuses it
            extra.update(vocoder_method=self.settings.vocoder, vocoder_named=True)
        if self.settings.listen != "decoded" and not no_audio:   # nothing played: nothing to choose
            extra["listen"] = self.settings.listen
        return PipelineConfig(
            stream_name=stream, model_path=model, truth_dir=self.settings.truth,
            no_audio=no_audio, audio_device=None if no_audio else device, **extra,
        )

    # ------------------------------------------------------------------ volume and A/B
    def gain(self) -> float:
        """The linear output gain the volume slider and mute box ask for."""
        return 0.0 if self.mute.isChecked() else self.volume.value() / 100.0

    def show_gain(self, gain: float) -> None:
        """Move the volume slider to ``gain`` (a decode's own volume) without announcing a change."""
        self.volume.blockSignals(True)
        self.volume.setValue(int(round(100 * gain)))
        self.volume.blockSignals(False)

    def _on_audio_picked(self, *_args) -> None:
        if self.audio_box.isEnabled():   # enabled only while stopped (show_audio fills it while starting)
            self._show_listen("stopped", None)

    def _on_listen_picked(self, *_args) -> None:
        self.listen_changed.emit(self.listen_box.currentData())

    def show_state(self, state: str, *, detach: bool = False, volume_off: str | None = None,
                   listen_now: str | None = None, cancellable: bool = False) -> None:
        """Enable what can be used in the window's state.

        Parameters
        ----------
        state : {"stopped", "starting", "running", "stopping"}
        detach : bool
            The decode was started elsewhere: the button lets go of it ("Detach") instead of stopping it.
        volume_off : str or None
            Why the volume cannot act on the running decode (shown as the tooltip), or None.
        listen_now : str or None
            The running decode's A/B mode when it can switch; None when it cannot.
        cancellable : bool
            A start in progress can be given up (the button reads "Cancel").
        """
        self.state = state
        labels = dict(BUTTON_LABELS, running="Detach" if detach else BUTTON_LABELS["running"])
        if cancellable:
            labels["starting"] = "Cancel"
        self.start_button.setText(labels[state])
        self.start_button.setEnabled(state in ("stopped", "running") or (state == "starting" and cancellable))
        idle = state == "stopped"
        for widget in (self.stream_box, self.refresh_button, self.model_edit, self.model_button):
            widget.setEnabled(idle)
        self.audio_box.setEnabled(idle and self.audio_reason is None)
        self._show_volume(state, volume_off)
        self._show_listen(state, listen_now)

    def _show_volume(self, state: str, volume_off: str | None) -> None:
        if self.audio_reason is not None:
            return  # disabled for good, the tooltip says why
        if state == "running" and volume_off is not None:
            for widget in (self.volume, self.mute):
                widget.setEnabled(False)
                widget.setToolTip(volume_off)
        else:
            self.volume.setEnabled(True)
            self.mute.setEnabled(True)
            self.volume.setToolTip("output volume")
            self.mute.setToolTip("silence the output; decoding goes on")

    def _show_listen(self, state: str, listen_now: str | None) -> None:
        if state == "running" and listen_now is not None:
            self.listen_box.setEnabled(True)
            self.listen_box.setToolTip("A/B: the decoded sound, the true stimulus at the same EEG time, "
                                       "or both")
            self.listen_box.blockSignals(True)
            self.listen_box.setCurrentIndex(max(self.listen_box.findData(listen_now), 0))
            self.listen_box.blockSignals(False)
        elif self.settings.truth is None:   # B and A+B play the stimulus, which only --truth gives
            self.listen_box.blockSignals(True)
            self.listen_box.setCurrentIndex(0)
            self.listen_box.blockSignals(False)
            self.listen_box.setEnabled(False)
            self.listen_box.setToolTip("A/B needs the stimulus audio: open the dashboard with --truth DATA "
                                       "(the dataset a replay plays) to play the true stimulus or both")
        elif state == "stopped" and (self.audio_box.currentData() == NO_DEVICE or self.audio_reason):
            self.listen_box.setEnabled(False)
            self.listen_box.setToolTip("nothing is played: pick an audio output to choose what to hear")
        else:
            self.listen_box.setEnabled(state == "stopped")
            self.listen_box.setToolTip(
                "what to play: needs a replay with markers and --truth (the stimulus audio); the A/B "
                "switch works while decoding when the decode started with true or both")
