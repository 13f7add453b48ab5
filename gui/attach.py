"""The dashboard's view of a decode running in another process.

``eegmusic gui`` no longer decodes in its own interpreter: Qt drawing holds the GIL, and a
decoder sharing it waited behind every redraw (issue 15: decode p99 rose from 6.7 to 13.6 ms with
the dashboard open). Instead the decode is an ``eegmusic decode --publish NAME`` process that writes
snapshots into a shared-memory seqlock block (:mod:`decoder.shared_snapshot`), and the window reads
them through :class:`AttachedDecode`, which has the same surface as the in-process pipeline
(:class:`decoder.snapshot.SnapshotSource`) plus the volume.

Two ways in:

* :func:`spawn_decode` starts the decode process itself (``eegmusic gui --stream S --model M``);
  closing the window stops that process (Ctrl-C, so it prints and writes its summary), and should
  the dashboard die instead, the decode notices within a publish period and stops too.
* :meth:`AttachedDecode.__init__` attaches to one already running (``eegmusic gui --attach NAME``);
  closing the window only lets go of it: the decode goes on.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from eegmusic.decoder.melspec import N_MELS
from eegmusic.decoder.shared_snapshot import OWNER_ENV, SnapshotReader, remove_stale_block, snapshot_path
from eegmusic.decoder.snapshot import PipelineSnapshot
from eegmusic.stream.errors import EEGMusicError, StreamError

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0
"""Seconds a decode this dashboard started gets to stop after Ctrl-C before it is terminated."""


@dataclass
class DecodeSettings:
    """What an attached decode says about itself (filled from its published settings)."""

    stream_name: str | None = None
    model_path: str | None = None
    truth_dir: str | None = None
    no_audio: bool = False
    vocoder: str | None = None
    hop_s: float | None = None
    listen: str = "decoded"
    pid: int | None = None


def _empty_snapshot(error: str | None = None) -> PipelineSnapshot:
    return PipelineSnapshot(eeg=np.zeros((0, 0), np.float32), eeg_sfreq=0.0, labels=[],
                            channel_flags=np.zeros(0, bool), mel=np.zeros((N_MELS, 0), np.float32),
                            truth_mel=None, dynamic_r=None, latency_ms={}, counters={}, health=None,
                            running=error is None, error=error)


class AttachedDecode:
    """A decode in another process, read through its snapshot block without ever blocking it.

    Parameters
    ----------
    name : str
        The decode's publish name.
    process : subprocess.Popen, optional
        The decode process when this dashboard started it (then :meth:`stop` stops it); None when
        attaching to one started elsewhere (then :meth:`stop` only lets go).
    summary_path : Path, optional
        Where the started process writes its final summary (``decode --json``).

    Raises
    ------
    StreamError
        No decode publishes as ``name``, or its process is gone.
    """

    def __init__(self, name: str, *, process: subprocess.Popen | None = None,
                 summary_path: Path | None = None) -> None:
        self.name = name
        self.reader = SnapshotReader(name)
        self.process = process
        self.summary_path = summary_path
        self._last: PipelineSnapshot | None = None
        self._document: dict = {}
        self._final_summary: dict | None = None
        self._stopped = False
        self.snapshot()
        published = self._document.get("config") or {}
        self.config = DecodeSettings(**{key: value for key, value in published.items()
                                        if key in DecodeSettings.__dataclass_fields__})

    @property
    def owned(self) -> bool:
        """Whether this dashboard started the decode (and so stops it)."""
        return self.process is not None

    def start(self) -> AttachedDecode:
        """Nothing to do: the decode already runs in its own process."""
        return self

    @property
    def _writer_gone(self) -> bool:
        """The decode no longer runs: its block or process is gone, or (the one this dashboard started)
        its process has ended, a zombie until reaped, which a process-id check counts alive."""
        return not self.reader.writer_alive or (self.process is not None and self.process.poll() is not None)

    @property
    def running(self) -> bool:
        if self._stopped or self._writer_gone:
            return False
        return self._last is None or self._last.running

    def snapshot(self) -> PipelineSnapshot:
        """The newest snapshot (the previous one when the decode was mid-write; never waits)."""
        if self._stopped or not self.reader.is_open:
            return self._last or _empty_snapshot("detached")
        if self._writer_gone:
            last = self._last or _empty_snapshot()
            last.running = False
            if last.error is None and self.process is not None and self.process.poll() != 0:
                # the dashboard's own decode that dies (a crash, an OOM kill) is said with its log, kept
                last.error = self._exit_reason()
            # one started elsewhere, or the dashboard's own ending with status 0 (a Ctrl-C in the terminal
            # reaches it too), that ends without an error has simply ended (no error: the window says so
            # and stops following it)
            self._last = last
            return last
        copied = self.reader.read()
        if copied is not None:
            self._last, self._document = copied
        return self._last or _empty_snapshot()

    def _exit_reason(self) -> str:
        """Why the decode process this dashboard started is gone, and where its log is."""
        code = self.process.poll()
        how = ("is gone" if code is None else f"was killed by signal {-code}" if code < 0
               else f"exited with status {code}")
        log_path = None if self.summary_path is None else self.summary_path.parent / "decode.log"
        where = f"; its log: {log_path}" if log_path is not None and log_path.is_file() else ""
        return f"the dashboard's decode process {how}{where}"

    def counters(self) -> dict[str, int]:
        return dict(self.snapshot().counters)

    def summary(self) -> dict:
        """The decode's summary: its final one once it has stopped, else the latest published."""
        if self._final_summary is not None:
            return self._final_summary
        return dict(self._document.get("summary") or {})

    @property
    def gain(self) -> float:
        """The decode's output gain now (1 = full, 0 = mute)."""
        return self.reader.gain if self.reader.is_open else 1.0

    def set_gain(self, gain: float) -> None:
        """Set the decode's volume (0…1; 0 mutes), heard from its next block."""
        if self.reader.is_open:
            self.reader.set_gain(gain)

    @property
    def can_switch_listen(self) -> bool:
        """Whether the decode keeps the true stimulus, so the A/B switch can change what it plays."""
        return self.config.listen != "decoded"

    @property
    def listen(self) -> str:
        """What the decode plays now (decoded, true or both)."""
        return (self._document.get("config") or {}).get("listen_now") or self.config.listen

    def set_listen(self, mode: str) -> None:
        """The A/B switch: ask the decode to play ``mode`` (decoded, true or both) from its next chunk."""
        if self.reader.is_open:
            self.reader.set_listen(mode)

    def stop(self) -> None:
        """Stop the decode if this dashboard started it; otherwise only let go of it."""
        if self._stopped:
            return
        self._stopped = True
        ended = self._writer_gone
        self.reader.close()
        if self.process is None:
            if ended:   # a writer that died (killed, crashed) could not remove its block
                remove_stale_block(self.name)
                log.info("decode %r has ended", self.name)
            else:
                log.info("detached from decode %r; it keeps running", self.name)
            return
        # the decode prints and writes its summary on SIGINT
        if self.process.poll() is None and not _interrupt(self.process, STOP_TIMEOUT_S):
            log.warning("decode %r did not stop in %.0f s; killed it", self.name, STOP_TIMEOUT_S)
        remove_stale_block(self.name)   # reaped now: a block a killed or crashed writer left goes
        if self.summary_path is not None and self.summary_path.is_file():
            try:
                self._final_summary = json.loads(self.summary_path.read_text())
            except (OSError, ValueError):
                log.warning("could not read the decode's summary %s", self.summary_path)
        if self.summary_path is not None and self.process.returncode == 0:
            shutil.rmtree(self.summary_path.parent, ignore_errors=True)  # its log and summary are read


def decode_command(config, name: str, *, summary_path: Path | None = None) -> list[str]:
    """The ``eegmusic decode`` command line for a :class:`decoder.pipeline.PipelineConfig`.

    Parameters
    ----------
    config : decoder.pipeline.PipelineConfig
    name : str
        Publish name.
    summary_path : Path, optional
        ``--json`` target for the final summary.
    """
    from eegmusic.decoder.vocoders import DEFAULT_VOCODER

    argv = [sys.executable, "-m", "eegmusic", "decode", "--publish", name, "--model", str(config.model_path),
            "--hop", repr(float(config.hop_s)), "--timeout", repr(float(config.resolve_timeout_s)),
            "--threads", str(config.threads), "--device", config.device]
    # only a vocoder chosen: decode refuses a typed one for a waveform model, which uses none
    if config.vocoder_named or config.vocoder_method != DEFAULT_VOCODER:
        argv += ["--vocoder", config.vocoder_method]
    if config.subject is not None:
        argv += ["--subject", config.subject]
    if config.stream_name:
        argv += ["--stream", config.stream_name]
    elif config.stream_type:
        argv += ["--type", config.stream_type]
    if config.source_id:
        argv += ["--source-id", config.source_id]
    if config.no_audio:
        argv.append("--no-audio")
    elif config.wav_path is not None:  # the caller chose this path (and may have made it already)
        argv += ["--wav", str(config.wav_path), "--overwrite"]
        if config.wav_shown_as is not None:
            argv += ["--wav-shown-as", str(config.wav_shown_as)]
    elif config.audio_device is not None:
        argv += ["--audio-device", str(config.audio_device)]
    if config.truth_dir is not None:
        argv += ["--truth", str(config.truth_dir)]
    if config.record_dir is not None:
        argv += ["--record", str(config.record_dir)]
    if not config.lsl_out:
        argv.append("--no-lsl-out")
    if not config.agc and not config.no_audio and config.wav_path is None:  # decode refuses it there
        argv.append("--no-agc")
    if config.listen != "decoded" and not config.no_audio:  # decode refuses --listen with --no-audio
        argv += ["--listen", config.listen]
    if config.impute_missing:
        argv.append("--impute-missing")
    if config.smooth_frames:
        argv += ["--smooth", str(config.smooth_frames)]
    if summary_path is not None:
        argv += ["--json", str(summary_path)]
    return argv


CANCELLED = "start cancelled"
"""What a cancelled start says: :class:`StartCancelled`'s message and the dashboard's stopped note."""


class StartCancelled(EEGMusicError):
    """The user cancelled a start before the decode published (not a failure). The window reads its own
    cancel flag, which also covers a failure that lands after a cancel; the type tells other callers."""


def _interrupt(process: subprocess.Popen, timeout_s: float) -> bool:
    """SIGINT ``process`` (its own cleanup runs), SIGKILL it after ``timeout_s``; reap it. True when it
    stopped on SIGINT."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout_s)
        return True
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return False


def spawn_decode(config, *, gain: float = 1.0, cancel: threading.Event | None = None) -> AttachedDecode:
    """Start ``eegmusic decode --publish`` in its own process and attach to it.

    Parameters
    ----------
    config : decoder.pipeline.PipelineConfig
    gain : float
        Initial volume (0…1).
    cancel : threading.Event, optional
        Set by another thread to give up while the decode is still starting: it is stopped and its
        folder removed.

    Raises
    ------
    EEGMusicError
        The decode process stopped before publishing: its one-line reason.
    StartCancelled
        ``cancel`` was set first.
    """
    name = f"gui-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    folder = Path(tempfile.mkdtemp(prefix="eegmusic-gui-"))
    summary_path = folder / "summary.json"
    log_path = folder / "decode.log"
    argv = decode_command(config, name, summary_path=summary_path)
    log.info("starting %s", " ".join(argv))
    env = {**os.environ, OWNER_ENV: str(os.getpid())}  # it stops by itself if this process dies
    with open(log_path, "wb") as log_file:  # a file, not a pipe: a full pipe would stall the decoder
        process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env)
    wait_s = config.resolve_timeout_s + 30.0   # the stream's timeout, and 30 s to load the model
    deadline = time.monotonic() + wait_s
    path = snapshot_path(name)
    while not path.exists():
        if cancel is not None and cancel.is_set():
            _interrupt(process, 2.0)   # its own cleanup first (a half-made block, its outlets)
            remove_stale_block(name)
            shutil.rmtree(folder, ignore_errors=True)
            raise StartCancelled(CANCELLED)
        if process.poll() is not None:
            lines = _log_lines(log_path)
            reason = _stated_error(lines)
            if reason is None:  # no one-line error: the log is what is left to read, so it stays
                raise EEGMusicError(f"the decode process exited with status {process.returncode} "
                                    f"({lines[-1] if lines else 'no output'}); its log: {log_path}")
            shutil.rmtree(folder, ignore_errors=True)  # the decode said why in one line; nothing else to keep
            raise EEGMusicError(reason)
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise StreamError(f"the decode process did not start within {wait_s:.0f} s; its log: {log_path}")
        time.sleep(0.05)
    attached = AttachedDecode(name, process=process, summary_path=summary_path)
    attached.set_gain(gain)
    return attached


def _log_lines(log_path: Path) -> list[str]:
    """The decode process's log, its non-blank lines stripped (none if it cannot be read)."""
    try:
        return [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return []


def _stated_error(lines: list[str]) -> str | None:
    """The decode process's one-line error among its log lines (without the command prefix), or None."""
    prefix = "eegmusic decode: error: "
    for line in reversed(lines):
        if line.startswith(prefix):
            return line[len(prefix):]
    return None
