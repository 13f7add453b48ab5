"""The sound server's side of the latency bench: a null sink, its monitor recorded on the LSL clock.

How the recording is put on the LSL clock, and that clock's error
    The reader thread stamps every block ``parec`` delivers with ``pylsl.local_clock()``. A block
    ending at recorded sample ``n`` and read at ``t`` was captured at ``t - n / 22050 + d`` with a
    delivery delay ``d >= 0``; the smallest ``t - n / 22050`` over the recording is taken as the
    clock offset (a lower envelope: it errs late by the smallest delivery delay seen). The
    loopback calibration (:func:`loopback_calibration`) plays clicks through the same device from
    a PortAudio callback that knows, on the LSL clock, when PortAudio expects each click at the
    DAC, and finds them in the same kind of recording: its residual (found - expected) is the
    measurement's error against PortAudio's own timing, reported as median and p5..p95 beside the
    latencies (not subtracted: PortAudio's DAC time is an estimate too).

- :func:`null_sink` loads a PulseAudio null sink and makes it this process's output;
- :class:`MonitorRecorder` records its monitor with ``parec``; :class:`MonitorRecording` maps recorded
  samples to LSL times;
- :func:`find_onsets` finds the first audible sample after given times;
- :func:`loopback_calibration` measures the recording clock against PortAudio's DAC times.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

RATE = 22050

CLOCK_WINDOW_S = 1.0
"""Blocks of the recording over which the clock's lower envelope is taken, seconds ahead."""

ONSET_FRACTION = 0.1
"""An onset is where the envelope first reaches this fraction of the burst's plateau (-20 dB)."""

UNDERRUN_GRACE_S = 0.05
"""After a click's DAC time, how long an underflow flag may still come from the underrun that lost it."""

STALL_ALLOWANCE_S = 3.0
"""Extra time the calibration may click for: measured here, after an underrun caused by a callback
held up for 150 ms, PortAudio's ALSA stream on PulseAudio stopped calling back for 1.96 s before it
resumed (underruns from machine stalls in the latency bench did not stop it)."""


@dataclass
class MonitorRecording:
    """What :class:`MonitorRecorder` captured: samples and their LSL times.

    ``offset`` is the LSL time of recorded sample 0 when the recording ran without a break; a
    sound server that suspends an idle sink delivers nothing meanwhile, so each block carries its
    own offset (``block_end``, ``block_offset``) and :meth:`lsl_time` uses the block a sample is in.
    """

    audio: np.ndarray
    offset: float
    arrival_lateness_ms: dict = field(default_factory=dict)
    """p50/p95 of how much later than the envelope blocks arrived (the reader's jitter), ms."""
    block_end: np.ndarray | None = None
    """Recorded sample index one past each block, shape (n_blocks,)."""
    block_offset: np.ndarray | None = None
    """LSL time of sample 0 by each block's clock, shape (n_blocks,)."""

    def lsl_time(self, sample: np.ndarray | float) -> np.ndarray | float:
        """LSL time of recorded sample index ``sample``."""
        sample = np.asarray(sample)
        if self.block_end is None:
            return self.offset + sample / RATE
        block = np.minimum(np.searchsorted(self.block_end, sample, side="right"), len(self.block_end) - 1)
        return self.block_offset[block] + sample / RATE

    def sample_at(self, lsl_time: float) -> int:
        """Recorded sample index at LSL time ``lsl_time`` (by the block clock there)."""
        if self.block_end is None:
            return int(round((lsl_time - self.offset) * RATE))
        starts = np.concatenate([[0], self.block_end[:-1]])
        block_times = self.block_offset + starts / RATE
        block = max(int(np.searchsorted(block_times, lsl_time, side="right")) - 1, 0)
        return int(round((lsl_time - self.block_offset[block]) * RATE))


class MonitorRecorder:
    """Record a PulseAudio source (a sink's ``.monitor``) with ``parec``, stamping each block read.

    ``parec`` runs with a 5-ms fragment and without any ``PULSE_LATENCY_MSEC`` (which would enlarge
    its blocks and so the clock's error).
    """

    def __init__(self, source: str):
        env = {k: v for k, v in os.environ.items() if k != "PULSE_LATENCY_MSEC"}
        self._process = subprocess.Popen(
            ["parec", f"--device={source}", "--format=float32le", f"--rate={RATE}", "--channels=1",
             "--latency-msec=5"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        self._blocks: list[bytes] = []
        self._stamps: list[tuple[float, int]] = []
        self._thread = threading.Thread(target=self._read, name="latency-parec", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10.0
        while sum(n for _, n in self._stamps[-1:]) < 0.1 * RATE and time.monotonic() < deadline:
            time.sleep(0.01)

    def _read(self) -> None:
        import pylsl

        n = 0
        partial = b""
        while True:
            chunk = self._process.stdout.read1(65536)
            if not chunk:
                return
            t = pylsl.local_clock()
            partial += chunk
            usable = len(partial) // 4 * 4
            self._blocks.append(partial[:usable])
            partial = partial[usable:]
            n += usable // 4
            self._stamps.append((t, n))

    def stop(self) -> MonitorRecording:
        """Stop recording; return the samples and their LSL clock."""
        self._process.terminate()
        self._thread.join(timeout=10.0)
        self._process.wait(timeout=10.0)
        self._process.stdout.close()
        audio = np.frombuffer(b"".join(self._blocks), dtype="<f4").astype(np.float32)
        stamps = np.array(self._stamps, dtype=np.float64).reshape(-1, 2)
        if len(stamps) == 0:
            raise RuntimeError("parec recorded nothing; is the PulseAudio sink's monitor there?")
        starts = stamps[:, 0] - stamps[:, 1] / RATE
        # A block's delivery delay is >= 0, so the clock is the lower envelope of block arrivals;
        # forward-looking (blocks up to CLOCK_WINDOW_S later), as a suspended sink only ever jumps
        # the offset up, and only blocks after the jump may define it there.
        window = max(1, int(np.searchsorted(stamps[:, 0], stamps[0, 0] + CLOCK_WINDOW_S)))
        from scipy.ndimage import minimum_filter1d

        padded = np.concatenate([starts, np.full(window, np.inf)])
        block_offset = minimum_filter1d(padded, size=window, origin=-(window // 2))[:len(starts)]
        late = (starts - block_offset) * 1e3
        return MonitorRecording(audio, float(block_offset[0]),
                                {"p50": round(float(np.percentile(late, 50)), 2),
                                 "p95": round(float(np.percentile(late, 95)), 2),
                                 "clock_jumps": int(np.sum(np.diff(block_offset) > 0.02))},
                                block_end=stamps[:, 1].astype(np.int64), block_offset=block_offset)


def find_onsets(recording: MonitorRecording, expected: np.ndarray, *, search_s: float = 0.6,
                quiet_s: float = 0.05) -> np.ndarray:
    """LSL time of the first audible sample after each expected time (NaN where none is found).

    A burst's peak is the largest ``|sample|`` in the search span; its onset is the first sample
    whose magnitude reaches :data:`ONSET_FRACTION` of that, in ``[t, t + search_s]``, preceded by
    ``quiet_s`` below it (so the tail of an earlier burst is not taken for an onset).

    Parameters
    ----------
    recording : MonitorRecording
    expected : ndarray, shape (n_events,)
        LSL times to search after (the events' EEG times).

    Returns
    -------
    ndarray, shape (n_events,)
    """
    env = np.abs(recording.audio)
    onsets = np.full(len(expected), np.nan)
    for i, t in enumerate(expected):
        a = recording.sample_at(t)
        b = a + int(search_s * RATE)
        if a < 0 or b > len(env):
            continue
        window = env[a:b]
        peak = float(window.max())
        if peak < 1e-3:                                  # nothing loud: not found
            continue
        threshold = ONSET_FRACTION * peak
        above = np.flatnonzero(window >= threshold)
        quiet = int(quiet_s * RATE)
        for j in above:
            if j >= quiet and np.all(window[j - quiet:j] < threshold):
                onsets[i] = recording.lsl_time(a + j)
                break
    return onsets


def percentiles_ms(latency_s: np.ndarray) -> dict:
    """p50/p95/p99 (ms) and count of the finite values."""
    values = latency_s[np.isfinite(latency_s)] * 1e3
    if values.size == 0:
        return {"p50": None, "p95": None, "p99": None, "n": 0}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50": round(float(p50), 1), "p95": round(float(p95), 1), "p99": round(float(p99), 1),
            "n": int(values.size)}


# ---------------------------------------------------------------------------------------------------
# Calibration: clicks whose DAC time PortAudio states, found in the same kind of recording


def loopback_calibration(monitor: str, *, n_clicks: int = 12, period_s: float = 0.25,
                         device: str | int | None = None) -> dict:
    """Play clicks from a PortAudio callback and find them in the monitor recording.

    The callback writes a click at the start of its block and notes PortAudio's DAC time for that
    block, moved onto the LSL clock (``local_clock() + outputBufferDacTime - currentTime``). The
    stream is opened like the decoder's sink (:class:`decoder.audio.SoundDeviceSink` defaults:
    :data:`decoder.audio.DEVICE_LATENCY_S`, 128-sample blocks).

    A click still in the device's buffer when the device underran may never sound: ALSA's
    recovery drops what was queued. PortAudio flags the underrun on a later callback, so a click
    is counted *disturbed* when an underflow is flagged between its callback and its DAC time plus
    :data:`UNDERRUN_GRACE_S`; a disturbed click is not a measurement of the clock and is played
    again (up to ``n_clicks`` more clicks, and :data:`STALL_ALLOWANCE_S` more time), so that
    ``n_clicks`` undisturbed clicks are measured.

    Returns
    -------
    dict
        ``residual_ms`` (found - PortAudio's DAC time: p5, p50, p95) over the undisturbed clicks,
        ``found`` of the ``clicks`` undisturbed ones played, ``disturbed`` clicks (and how many of
        them were found anyway), ``underflows`` flagged, the recording's ``arrival_lateness_ms``
        and PortAudio's ``dac_latency_ms``.
    """
    import pylsl
    import sounddevice as sd
    from eegmusic.decoder.audio import DEVICE_LATENCY_S, resolve_output_device

    clicks: list[tuple[float, float]] = []          # (callback time, DAC time) on the LSL clock
    underflows: list[float] = []
    dac: list[float] = []
    state = {"due": None}

    def callback(outdata, frames, time_info, status):
        outdata[:] = 0.0
        now = pylsl.local_clock()
        if status.output_underflow:
            underflows.append(now)
        dac.append(time_info.outputBufferDacTime - time_info.currentTime)
        if state["due"] is not None and now >= state["due"]:
            outdata[:32, 0] = 0.8
            clicks.append((now, now + time_info.outputBufferDacTime - time_info.currentTime))
            state["due"] = None

    recorder = MonitorRecorder(monitor)
    stream = sd.OutputStream(device=resolve_output_device(device), samplerate=RATE, blocksize=128, channels=1,
                             dtype="float32", latency=DEVICE_LATENCY_S, callback=callback)
    stream.start()
    try:
        time.sleep(1.0)                                   # PulseAudio settles a new stream
        # an underrun through PulseAudio's ALSA plugin also stops the callbacks for about 2 s
        for _ in range(2 * n_clicks + int(np.ceil(STALL_ALLOWANCE_S / period_s))):
            state["due"] = pylsl.local_clock()
            time.sleep(period_s)                          # > the DAC time + grace: flags are in
            if np.sum(~disturbed(clicks, underflows)) >= n_clicks:
                break
        time.sleep(0.3)
    finally:
        stream.abort()                                    # as SoundDeviceSink.close: never a hanging stop
        stream.close()
        recording = recorder.stop()
    played = np.asarray([dac_time for _, dac_time in clicks]).reshape(-1)
    found = find_onsets(recording, played - 0.1, search_s=0.3, quiet_s=0.02)
    residual = (found - played) * 1e3
    clean = ~disturbed(clicks, underflows)
    ok = residual[clean & np.isfinite(residual)]
    return {
        "found": int(ok.size), "clicks": int(clean.sum()), "clicks_asked": n_clicks,
        "disturbed": {"clicks": int((~clean).sum()), "found": int(np.isfinite(residual[~clean]).sum())},
        "underflows": len(underflows),
        "residual_ms": ({"p5": round(float(np.percentile(ok, 5)), 2), "p50": round(float(np.median(ok)), 2),
                         "p95": round(float(np.percentile(ok, 95)), 2)} if ok.size else None),
        "arrival_lateness_ms": recording.arrival_lateness_ms,
        "dac_latency_ms": round(float(np.median(dac)) * 1e3, 2) if dac else None,
    }


def disturbed(clicks: list[tuple[float, float]], underflows: list[float]) -> np.ndarray:
    """Which clicks an underrun may have dropped: one flagged from their callback to DAC time + grace.

    Parameters
    ----------
    clicks : list of (callback time, DAC time)
        LSL times of each click's callback and of PortAudio's DAC time for it.
    underflows : list of float
        LSL times of callbacks that PortAudio flagged with an output underflow.

    Returns
    -------
    ndarray of bool, shape (n_clicks,)
    """
    flagged = np.asarray(list(underflows), float)
    return np.array([bool(np.any((flagged >= start) & (flagged <= dac_time + UNDERRUN_GRACE_S)))
                     for start, dac_time in list(clicks)], bool)


@contextlib.contextmanager
def null_sink():
    """Load a PulseAudio null sink, make it this process's output; yield its monitor's name."""
    for tool in ("pulseaudio", "pactl", "parec"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is missing: apt-get install pulseaudio pulseaudio-utils")
    if subprocess.run(["pactl", "info"], capture_output=True).returncode != 0:
        subprocess.run(["pulseaudio", "--start", "--exit-idle-time=-1"], capture_output=True, timeout=30)
        for _ in range(50):
            if subprocess.run(["pactl", "info"], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
    name = f"eegmusic_bench_{uuid.uuid4().hex[:8]}"
    module = subprocess.run(["pactl", "load-module", "module-null-sink", f"sink_name={name}", f"rate={RATE}",
                             "channels=1", "format=float32le"], capture_output=True, text=True,
                            check=True).stdout.strip()
    previous = os.environ.get("PULSE_SINK")
    os.environ["PULSE_SINK"] = name
    try:
        from eegmusic.decoder.audio import refresh_devices

        refresh_devices()
        yield f"{name}.monitor"
    finally:
        if previous is None:
            os.environ.pop("PULSE_SINK", None)
        else:
            os.environ["PULSE_SINK"] = previous
        subprocess.run(["pactl", "unload-module", module], capture_output=True)
