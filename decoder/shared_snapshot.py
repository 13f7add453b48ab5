"""Snapshots of a running decode in shared memory, for a dashboard in another process.

A ``decode --publish NAME`` process copies :meth:`LivePipeline.snapshot` into a memory-mapped block
(``/dev/shm/eegmusic-NAME.snapshot``, or the temp folder where there is no ``/dev/shm``) about 20
times a second, from a thread of its own. A dashboard (``eegmusic gui --attach NAME``) maps the same
block and copies snapshots out. Nothing is shared but memory, and nobody waits:

* **seqlock.** The writer makes the sequence number odd, writes, makes it even again. A reader
  notes the number, copies, and keeps the copy only if the number is even and unchanged; else it
  tries again a little later (or keeps its previous snapshot). The writer never waits for a reader,
  so however slow a dashboard is (Qt drawing, a stalled X server, a debugger), decoding in the other
  process runs on its own interpreter and its own GIL, at its own pace.
* **control words.** What a dashboard writes back: the output gain (volume, 0 = mute), a single
  aligned float the decode process applies to the next block it plays, and the A/B listen choice
  (decoded, true stimulus, or both) for a decode started with ``--listen true|both``.
* **liveness.** The header holds the writer's process id and a heartbeat time; a block whose writer
  is gone (killed) is recognised as stale and removed by the next one to look.

Layout: a 256-byte header (magic, sequence, pid, heartbeat, gain, capacities, current sizes), then
EEG float32 (n_chans × n_times), channel flags (uint8), mel and true mel float32 (128 × n_frames),
then a JSON document with everything else (labels, counters, latency, health, summary, config).
x86 keeps stores in order, which the seqlock relies on; the reader's re-check makes a torn copy
on a weaker machine impossible to keep, not just unlikely.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import mmap
import os
import re
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from eegmusic.decoder.melspec import FRAME_PERIOD_S, N_MELS
from eegmusic.decoder.snapshot import PipelineSnapshot
from eegmusic.stream.errors import ConfigError, StreamError
from eegmusic.stream.source import StreamHealth

log = logging.getLogger(__name__)

MAGIC = b"EEGMSNP1"
HEADER_BYTES = 256
JSON_BYTES = 1 << 18
PUBLISH_HZ = 20.0
"""Snapshots written per second (the dashboard polls at most 30 times a second)."""
SUMMARY_PERIOD_S = 1.0
"""Seconds between copies of the (larger) run summary."""
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
OWNER_ENV = "EEGMUSIC_DASHBOARD_PID"
"""Environment variable with the process id of the dashboard that started a decode: the decode
stops when that process is gone (a dashboard that crashed or was killed leaves nothing playing)."""

# header word offsets (bytes)
_SEQ, _PID, _HEARTBEAT, _GAIN, _GAIN_SEQ = 8, 16, 24, 32, 40
_CAPS = 48        # eeg rows, eeg cols, mel cols, json bytes (uint64 each)
_SIZES = 80       # eeg rows, eeg cols, mel cols, json length, has truth (uint64 each)
_LISTEN = 128     # the dashboard's listen choice: 0 none yet, else 1 + index in LISTEN_MODES
LISTEN_MODES = ("decoded", "true", "both")
"""What a decode with ``--listen`` can play (``decoder.pipeline.LISTEN_CHOICES``)."""


def snapshot_folder() -> Path:
    """Where snapshot blocks live: ``/dev/shm`` when it exists, else the temp folder."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


def snapshot_path(name: str) -> Path:
    """The block file of a decode published as ``name``."""
    check_name(name)
    return snapshot_folder() / f"eegmusic-{name}.snapshot"


def check_name(name: str, *, option: str = "--publish") -> None:
    """Raise ConfigError unless ``name`` is 1-64 letters, digits, ``_``, ``.`` or ``-``.

    ``option`` is the one the example in the message shows (``--attach`` where a dashboard reads it).
    """
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ConfigError(f"publish name {name!r} is not usable; use 1-64 letters, digits, '_', '.' or '-', "
                          f"e.g. {option} cap1")


def check_free(name: str) -> None:
    """Raise ConfigError unless ``name`` is usable and no live decode publishes under it.

    ``decode --publish`` asks before it opens its outputs; :class:`SnapshotWriter` asks again.
    """
    path = snapshot_path(name)
    if not path.exists():
        return
    try:
        other = SnapshotReader(name)   # a stale block is removed, an unreadable one named
    except StreamError:
        if os.getuid() == 0 or path.stat().st_uid == os.getuid():
            return                     # not a live block, and ours to replace: the writer does
        raise                          # another user's: it cannot be replaced (the message says so)
    pid = other.writer_pid
    other.close()
    raise ConfigError(f"a decode (process {pid}) already publishes as {name!r}; pick another "
                      "--publish name or stop that decode")


MAX_PID = 2**22
"""Largest process id Linux hands out (``pid_max``'s ceiling)."""


def owner_from_environment() -> int | None:
    """The dashboard process id in :data:`OWNER_ENV`, or None when unset or no process id (said once).

    The dashboard sets it; a value typed by hand that is no process id ("²", which ``str.isdigit``
    takes and ``int`` does not; 10**20, past what ``os.kill`` takes) ended the decode in a traceback,
    or killed its publishing thread while the decode ran on unseen.
    """
    value = os.environ.get(OWNER_ENV, "")
    if not value:
        return None
    if value.isascii() and value.isdigit() and 0 < int(value) <= MAX_PID:
        return int(value)
    log.warning("%s=%r is no process id, so it is ignored (the dashboard sets it for the decode it "
                   "starts); unset it", OWNER_ENV, value[:40])
    return None


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a zombie child counts: :class:`gui.attach.AttachedDecode` asks its
    own ``Popen`` about the decode it started)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):   # none, or past any process id (a damaged block's)
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _remove_block_if(name: str, doomed) -> bool:
    """Remove the block published as ``name`` when ``doomed(writer_pid)``; True when one was removed."""
    path = snapshot_path(name)
    try:
        block = _Block(path)
    except (OSError, ValueError, StreamError):  # none, not a block, or not ours to read
        return False
    remove = doomed(int(block.words[_PID // 8]))
    block.close()
    if remove:
        path.unlink(missing_ok=True)
    return remove


def remove_stale_block(name: str) -> bool:
    """Remove the block published as ``name`` if its writer no longer runs; True when one was removed.

    A decode that is killed or crashes cannot remove its own block; the dashboard that let go of it does.
    """
    return _remove_block_if(name, lambda pid: not _pid_alive(pid))


def remove_own_block(name: str) -> bool:
    """Remove the block published as ``name`` if this process made it; True when one was removed.

    For a decode stopped while its publisher was still being made: the block may already exist
    with nobody holding it. A block another process writes is left alone.
    """
    return _remove_block_if(name, lambda pid: pid == os.getpid())


def _layout(eeg_rows: int, eeg_cols: int, mel_cols: int) -> dict[str, tuple[int, int]]:
    """Byte (offset, size) of each data region."""
    regions = {}
    offset = HEADER_BYTES
    for key, size in (("eeg", 4 * eeg_rows * eeg_cols), ("flags", eeg_rows), ("mel", 4 * N_MELS * mel_cols),
                      ("truth", 4 * N_MELS * mel_cols), ("json", JSON_BYTES)):
        regions[key] = (offset, size)
        offset += (size + 7) // 8 * 8
    regions["total"] = (0, offset)
    return regions


class _Block:
    """The mapped file with typed views of its header and regions."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fix = f"use another name, or remove {path}"
        try:
            with open(path, "r+b") as file:
                self._map = mmap.mmap(file.fileno(), 0)
        except PermissionError:
            raise StreamError(f"{path} belongs to another user (cannot be opened for reading and writing); "
                              f"{fix} as that user") from None
        except (OSError, ValueError) as error:   # an empty file cannot be mapped (ValueError)
            raise StreamError(f"{path} is not an eegmusic snapshot block ({error}); {fix}") from None
        if len(self._map) < HEADER_BYTES or self._map[:8] != MAGIC:
            self._map.close()
            raise StreamError(f"{path} is not an eegmusic snapshot block; {fix}")
        self.words = np.frombuffer(self._map, dtype=np.uint64, count=HEADER_BYTES // 8)
        self.floats = np.frombuffer(self._map, dtype=np.float64, count=HEADER_BYTES // 8)
        caps = self.words[_CAPS // 8:_CAPS // 8 + 4]
        self.eeg_rows, self.eeg_cols, self.mel_cols, _ = (int(v) for v in caps)
        self.regions = _layout(self.eeg_rows, self.eeg_cols, self.mel_cols)
        if self.regions["total"][1] > len(self._map):   # a damaged header: its views would not fit
            size = len(self._map)
            self.words = self.floats = caps = None   # views must go before the map can close
            self._map.close()
            raise StreamError(f"{path} is a damaged snapshot block (its header declares "
                              f"{self.regions['total'][1]} bytes, the file holds {size}); {fix}")

        def view(key, dtype, shape):
            offset, size = self.regions[key]
            return np.frombuffer(self._map, dtype=dtype, count=size // np.dtype(dtype).itemsize,
                                 offset=offset).reshape(shape)

        self.eeg = view("eeg", np.float32, (self.eeg_rows, self.eeg_cols))
        self.flags = view("flags", np.uint8, (self.eeg_rows,))
        self.mel = view("mel", np.float32, (N_MELS, self.mel_cols))
        self.truth = view("truth", np.float32, (N_MELS, self.mel_cols))
        self.json = view("json", np.uint8, (JSON_BYTES,))

    def close(self) -> None:
        for name in ("words", "floats", "eeg", "flags", "mel", "truth", "json"):
            setattr(self, name, None)  # views must go before the map can close
        try:
            self._map.close()
        except BufferError:  # a snapshot copy still references the map: the OS frees it at exit
            pass


class SnapshotWriter:
    """Create the block of a decode published as ``name`` and write snapshots into it.

    Parameters
    ----------
    name : str
        Publish name (``decode --publish NAME``).
    n_chans : int
        EEG channels of the snapshots.
    eeg_cols, mel_cols : int
        Most EEG samples and mel frames a snapshot holds (newer ones win when a snapshot is larger).

    Raises
    ------
    ConfigError
        A bad name, or a live decode already published under it.
    """

    def __init__(self, name: str, *, n_chans: int, eeg_cols: int, mel_cols: int) -> None:
        self.name = name
        self.path = snapshot_path(name)
        check_free(name)
        regions = _layout(n_chans, eeg_cols, mel_cols)
        fd, tmp = tempfile.mkstemp(prefix=f".eegmusic-{name}-", dir=self.path.parent)
        try:
            try:
                os.ftruncate(fd, regions["total"][1])
                header = np.zeros(HEADER_BYTES // 8, dtype=np.uint64)
                header[_PID // 8] = os.getpid()
                header[_CAPS // 8:_CAPS // 8 + 4] = (n_chans, eeg_cols, mel_cols, JSON_BYTES)
                header_bytes = bytearray(header.tobytes())
                header_bytes[:8] = MAGIC
                header_bytes[_GAIN:_GAIN + 8] = np.float64(1.0).tobytes()
                os.pwrite(fd, bytes(header_bytes), 0)
            finally:
                os.close(fd)
            try:
                os.replace(tmp, self.path)  # readers never see a half-made header
            except PermissionError:
                raise StreamError(f"{self.path} belongs to another user and cannot be replaced; use another "
                                  f"--publish name, or remove {self.path} as that user") from None
        except BaseException:  # a Ctrl-C included: no half-made file is left in the folder
            Path(tmp).unlink(missing_ok=True)
            raise
        self._block = _Block(self.path)
        self._last_summary: dict | None = None
        log.info("publishing snapshots at %s", self.path)

    @property
    def gain(self) -> float:
        """The output gain a dashboard asked for (1.0 until one does; 0 = mute)."""
        value = float(self._block.floats[_GAIN // 8])
        return value if np.isfinite(value) and 0.0 <= value <= 1.0 else 1.0

    @property
    def listen(self) -> str | None:
        """The listen choice a dashboard asked for, or None when none has."""
        code = int(self._block.words[_LISTEN // 8])
        return LISTEN_MODES[code - 1] if 1 <= code <= len(LISTEN_MODES) else None

    def publish(self, snapshot: PipelineSnapshot, *, summary: dict | None = None, config: dict | None = None
                ) -> None:
        """Write one snapshot (and, when given, the run summary and the decode's settings)."""
        block = self._block
        if summary is not None:
            self._last_summary = summary
        eeg = np.asarray(snapshot.eeg, dtype=np.float32)
        rows = min(eeg.shape[0], block.eeg_rows) if eeg.ndim == 2 else 0
        cols = min(eeg.shape[1], block.eeg_cols) if eeg.ndim == 2 else 0
        mel = np.asarray(snapshot.mel, dtype=np.float32)
        mel_cols = min(mel.shape[1], block.mel_cols) if mel.ndim == 2 else 0
        document = {
            "eeg_sfreq": snapshot.eeg_sfreq, "labels": list(snapshot.labels)[:rows],
            "dynamic_r": snapshot.dynamic_r, "shifted_dynamic_r": snapshot.shifted_dynamic_r,
            "latency_ms": snapshot.latency_ms, "counters": snapshot.counters,
            "health": None if snapshot.health is None else dataclasses.asdict(snapshot.health),
            "running": snapshot.running, "error": snapshot.error, "frame_index": snapshot.frame_index,
            "model": snapshot.model, "extra": snapshot.extra, "summary": self._last_summary,
            "config": config, "published": time.time(),
        }
        payload = json.dumps(document, default=str).encode()
        for key in ("summary", "extra", "latency_ms"):  # never truncate JSON: leave out what grows
            if len(payload) <= JSON_BYTES:
                break
            document[key] = None if key == "summary" else {}
            payload = json.dumps(document, default=str).encode()
        if len(payload) > JSON_BYTES:
            document = {**{k: document[k] for k in ("eeg_sfreq", "running", "frame_index", "model")},
                        "labels": [], "dynamic_r": None, "shifted_dynamic_r": None, "latency_ms": {},
                        "counters": {}, "health": None,
                        "error": "snapshot too large to share", "extra": {}, "summary": None,
                        "config": config, "published": document["published"]}
            payload = json.dumps(document, default=str).encode()
            rows = 0
        words = block.words
        words[_SEQ // 8] += np.uint64(1)        # odd: writing
        block.eeg[:rows, :cols] = eeg[:rows, eeg.shape[1] - cols:] if cols else 0.0
        flags = np.asarray(snapshot.channel_flags, dtype=bool).reshape(-1)[:rows]
        block.flags[:flags.size] = flags
        block.mel[:, :mel_cols] = mel[:, mel.shape[1] - mel_cols:] if mel_cols else 0.0
        has_truth = snapshot.truth_mel is not None
        if has_truth and mel_cols:
            truth = np.asarray(snapshot.truth_mel, dtype=np.float32)
            block.truth[:, :mel_cols] = truth[:, truth.shape[1] - mel_cols:]
        block.json[:len(payload)] = np.frombuffer(payload, dtype=np.uint8)
        words[_SIZES // 8:_SIZES // 8 + 5] = (rows, cols, mel_cols, len(payload), int(has_truth))
        block.floats[_HEARTBEAT // 8] = time.time()
        words[_SEQ // 8] += np.uint64(1)        # even: a consistent snapshot

    def close(self) -> None:
        """Remove the block (a dashboard attached to it sees the decode end)."""
        if self._block is None:
            return
        self._block.close()
        self._block = None
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


class SnapshotReader:
    """Map the block of a decode published as ``name``; copy snapshots out without ever blocking it.

    Raises
    ------
    StreamError
        No decode publishes under ``name`` (the message says how to start one), or its process is
        gone (the stale block is removed).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = snapshot_path(name)
        if not self.path.exists():
            raise StreamError(f"no running decode publishes as {name!r} (no {self.path}); start one with "
                              f"`eegmusic decode --stream S --model M --publish {name}`, or let the "
                              "dashboard start it: `eegmusic gui --stream S --model M`")
        self._block = _Block(self.path)
        self.writer_pid = int(self._block.words[_PID // 8])
        if not _pid_alive(self.writer_pid):
            self.close()
            self.path.unlink(missing_ok=True)
            raise StreamError(f"the decode that published as {name!r} (process {self.writer_pid}) is no "
                              f"longer running (stale block removed); start it again with `eegmusic decode "
                              f"... --publish {name}`")
        self.retries = 0
        """Copies thrown away because the writer was writing meanwhile."""

    @property
    def is_open(self) -> bool:
        """Whether the block is still mapped (False after :meth:`close`)."""
        return self._block is not None

    @property
    def writer_alive(self) -> bool:
        """Whether the decode process still exists and its block is still in place."""
        return self._block is not None and self.path.exists() and _pid_alive(self.writer_pid)

    @property
    def heartbeat_age_s(self) -> float:
        """Seconds since the decode last published."""
        return time.time() - float(self._block.floats[_HEARTBEAT // 8])

    @property
    def gain(self) -> float:
        """The output gain now in force (1.0 = full, 0 = mute)."""
        return float(self._block.floats[_GAIN // 8])

    def set_gain(self, gain: float) -> None:
        """Ask the decode to play at ``gain`` (0…1; 0 mutes). One aligned store: no lock."""
        self._block.floats[_GAIN // 8] = min(max(float(gain), 0.0), 1.0)
        self._block.words[_GAIN_SEQ // 8] += np.uint64(1)

    def set_listen(self, mode: str) -> None:
        """Ask the decode to play ``mode`` (one of :data:`LISTEN_MODES`): the dashboard's A/B switch."""
        if mode not in LISTEN_MODES:
            raise ConfigError(f"listen choice {mode!r} is not one of {', '.join(LISTEN_MODES)}")
        self._block.words[_LISTEN // 8] = LISTEN_MODES.index(mode) + 1

    def read(self, *, attempts: int = 20) -> tuple[PipelineSnapshot, dict] | None:
        """Copy the newest consistent snapshot.

        Returns
        -------
        (snapshot, document) or None
            The snapshot and the JSON document it came with (``summary``, ``config``, ``published``);
            None when nothing has been published yet or the writer was busy on every attempt.
        """
        block = self._block
        words = block.words
        for attempt in range(attempts):
            seq = int(words[_SEQ // 8])
            if seq == 0:
                return None
            if seq & 1:
                time.sleep(0.0002 * (attempt + 1))
                continue
            rows, cols, mel_cols, length, has_truth = (int(v) for v in words[_SIZES // 8:_SIZES // 8 + 5])
            eeg = block.eeg[:rows, :cols].copy()
            flags = block.flags[:rows].astype(bool)
            mel = block.mel[:, :mel_cols].copy()
            truth = block.truth[:, :mel_cols].copy() if has_truth else None
            payload = block.json[:length].tobytes()
            if int(words[_SEQ // 8]) != seq:
                self.retries += 1
                continue
            document = json.loads(payload)
            health = document.get("health")
            if health is not None:
                names = {f.name for f in dataclasses.fields(StreamHealth)}
                health = StreamHealth(**{k: tuple(v) if isinstance(v, list) else v
                                         for k, v in health.items() if k in names})
            snapshot = PipelineSnapshot(
                eeg=eeg, eeg_sfreq=float(document["eeg_sfreq"]), labels=list(document["labels"]),
                channel_flags=flags, mel=mel, truth_mel=truth, dynamic_r=document["dynamic_r"],
                # absent from a decode of an earlier version: its control is then not shown
                shifted_dynamic_r=document.get("shifted_dynamic_r"),
                latency_ms=document["latency_ms"], counters=document["counters"], health=health,
                running=bool(document["running"]), error=document["error"],
                frame_index=document["frame_index"], model=document["model"], extra=document["extra"] or {})
            return snapshot, document
        return None

    def close(self) -> None:
        """Unmap the block (the decode goes on)."""
        if self._block is not None:
            self._block.close()
            self._block = None


class SnapshotPublisher:
    """A thread that publishes a pipeline's snapshots and applies the dashboard's gain to its sink.

    Parameters
    ----------
    pipeline : SnapshotSource
        A started :class:`decoder.pipeline.LivePipeline`.
    name : str
        Publish name.
    gain_sink : object with a ``gain`` attribute, optional
        The playback sink whose gain follows the dashboard's volume and mute
        (:class:`decoder.limiter.LevelledSink`).
    listen_config : object with a ``listen`` attribute, optional
        The pipeline's configuration when its decode keeps the true stimulus (started with
        ``--listen true|both``): its ``listen`` follows the dashboard's A/B switch, read per chunk by
        the output thread.
    config : dict, optional
        The decode's settings, shown by an attached dashboard (stream, model, vocoder, ...).
    rate_hz : float
        Snapshots per second.
    owner_pid : int, optional
        The dashboard process that started this decode (:data:`OWNER_ENV`); when it is gone,
        ``on_owner_gone`` is called once.
    on_owner_gone : callable, optional
        What to do then (``decode`` interrupts itself: it stops, prints and writes its summary).
    """

    def __init__(self, pipeline, name: str, *, gain_sink=None, listen_config=None, config: dict | None = None,
                 rate_hz: float = PUBLISH_HZ, snapshot_s: float = 10.0, owner_pid: int | None = None,
                 on_owner_gone=None) -> None:
        self.pipeline = pipeline
        first = pipeline.snapshot()
        eeg = np.asarray(first.eeg)
        n_chans = eeg.shape[0] if eeg.ndim == 2 and eeg.shape[0] else max(len(first.labels), 1)
        sfreq = first.eeg_sfreq if first.eeg_sfreq and first.eeg_sfreq > 0 else 1000.0
        eeg_cols = max(int(np.ceil(snapshot_s * sfreq)) + 16, eeg.shape[1] if eeg.ndim == 2 else 0)
        mel_cols = max(np.asarray(first.mel).shape[-1], int(np.ceil(snapshot_s / FRAME_PERIOD_S)))
        self.writer = SnapshotWriter(name, n_chans=n_chans, eeg_cols=eeg_cols, mel_cols=mel_cols)
        self.gain_sink = gain_sink
        self.listen_config = listen_config
        self.owner_pid = owner_pid
        self._on_owner_gone = on_owner_gone
        self.config = config or {}
        self.period_s = 1.0 / rate_hz
        self.publish_ms: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"publish-{name}", daemon=True)
        self._next_summary = 0.0

    def start(self) -> SnapshotPublisher:
        self._publish()
        self._thread.start()
        return self

    def _publish(self) -> None:
        now = time.monotonic()
        summary = None
        if now >= self._next_summary:
            self._next_summary = now + SUMMARY_PERIOD_S
            summary = self.pipeline.summary()
        if self.listen_config is not None:
            wanted = self.writer.listen
            if wanted is not None and wanted != self.listen_config.listen:
                self.listen_config.listen = wanted  # one attribute store; the next chunk plays it
                log.info("now playing: %s", wanted)
            self.config["listen_now"] = self.listen_config.listen
        t0 = time.perf_counter()
        self.writer.publish(self.pipeline.snapshot(), summary=summary, config=self.config)
        if len(self.publish_ms) < 100_000:
            self.publish_ms.append(1e3 * (time.perf_counter() - t0))
        if self.gain_sink is not None:
            self.gain_sink.gain = self.writer.gain

    def _run(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            next_t += self.period_s
            try:
                self._publish()
            except Exception:  # publishing is for display: never stop the decode over it
                log.exception("publishing a snapshot failed")
            if self.owner_pid is not None and not _pid_alive(self.owner_pid):
                log.warning("the dashboard that started this decode (process %d) is gone; stopping",
                            self.owner_pid)
                self.owner_pid = None
                if self._on_owner_gone is not None:
                    self._on_owner_gone()
            self._stop.wait(max(0.0, next_t - time.monotonic()))
            if time.monotonic() - next_t > 1.0:  # suspended: do not catch up in a burst
                next_t = time.monotonic()

    def stop(self) -> None:
        """Publish the final state (``running`` False, the last summary), then remove the block."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        try:
            self.writer.publish(self.pipeline.snapshot(), summary=self.pipeline.summary(), config=self.config)
        except Exception:
            log.exception("publishing the final snapshot failed")
        self.writer.close()
