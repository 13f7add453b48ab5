"""A procedural music generator: distinct songs at the NMED-T tempos, numpy only.

Each song has drums (kick, snare, hi-hat), bass, chords and a lead melody, arranged in sections
(intro, verse, chorus, breakdown, outro) that switch instruments on and off and change the timbre,
so the spectrum changes over time the way real songs do. The key, mode, chord progression, drum
pattern, melody and timbres follow from ``(seed, song_id)``, so every song differs and the same
arguments always give the same samples.

Examples
--------
>>> audio = generate_song(21, bpm=55.97, seconds=10.0, seed=0)
>>> audio.shape, audio.dtype
((220500,), dtype('float32'))
"""

from __future__ import annotations

import numpy as np

SFREQ = 22050
"""Output rate in Hz."""

MIN_EXCERPT_S = 1.0
"""Shortest excerpt of a music file that the simulator takes (a shorter one is refused)."""

_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
_MINOR = np.array([0, 2, 3, 5, 7, 8, 10])
_PROGRESSIONS = (  # scale degrees (0-based) of the four chords of a section
    (0, 5, 3, 4), (0, 3, 4, 3), (0, 4, 5, 3), (5, 3, 0, 4), (0, 2, 3, 4), (0, 5, 1, 4),
)
# section name -> (drums, bass, chords, lead, brightness 0..1, hi-hat subdivision per beat)
_SECTIONS = {
    "intro": (True, False, True, False, 0.3, 2),
    "verse": (True, True, True, False, 0.5, 2),
    "chorus": (True, True, True, True, 1.0, 4),
    "breakdown": (False, False, True, True, 0.2, 0),
    "outro": (True, True, False, False, 0.4, 2),
}
_TABLE_SIZE = 4096
_FORM = ("intro", "verse", "chorus", "verse", "breakdown", "chorus", "chorus", "outro")


def _midi_hz(note) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(note, dtype=float) - 69.0) / 12.0)


def _add(buffer: np.ndarray, start: int, signal: np.ndarray) -> None:
    """Add ``signal`` into ``buffer`` from sample ``start``, cut at the buffer's end."""
    if start >= buffer.size or start < 0:
        return
    n = min(signal.size, buffer.size - start)
    buffer[start:start + n] += signal[:n]


def _tone(freq: float, n: int, *, harmonics: int, rolloff: float, attack_s: float, decay_s: float,
          detune: float = 0.0) -> np.ndarray:
    """A harmonic tone with an attack-decay envelope.

    Parameters
    ----------
    freq : float
        Fundamental in Hz.
    n : int
        Length in samples.
    harmonics : int
        Number of partials (those above 10 kHz are dropped).
    rolloff : float
        Partial k has amplitude k**-rolloff (1 = sawtooth-like, 2 = mellow).
    attack_s, decay_s : float
        Linear attack and exponential decay time constants in seconds.
    detune : float
        Relative detuning of a second, chorused copy (0 = none).

    Returns
    -------
    tone : ndarray, shape (n,), float64
    """
    t = np.arange(n) / SFREQ
    k = np.arange(1, harmonics + 1)
    k = k[k * freq < 10000.0]
    amps = k ** -float(rolloff)
    # one period in a wavetable, read at the note's phase: O(n) whatever the number of partials
    table_phase = 2.0 * np.pi * np.arange(_TABLE_SIZE) / _TABLE_SIZE
    table = np.sin(np.outer(table_phase, k)) @ amps
    cycles = freq * t
    wave = table[(cycles * _TABLE_SIZE).astype(np.int64) % _TABLE_SIZE]
    if detune:
        wave = 0.5 * (wave + table[(cycles * (1.0 + detune) * _TABLE_SIZE).astype(np.int64) % _TABLE_SIZE])
    env = np.minimum(t / max(attack_s, 1e-3), 1.0) * np.exp(-t / decay_s)
    release = min(n, int(0.02 * SFREQ))
    if release:
        env[-release:] *= np.linspace(1.0, 0.0, release)
    return wave * env / max(amps.sum(), 1e-9)


def _drum_kit(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Kick, snare and two hi-hats (closed, open) as short sample arrays."""
    t = np.arange(int(0.45 * SFREQ)) / SFREQ
    f0, f1 = rng.uniform(110, 170), rng.uniform(42, 60)
    sweep = f1 + (f0 - f1) * np.exp(-t / 0.035)
    kick = np.sin(2 * np.pi * np.cumsum(sweep) / SFREQ) * np.exp(-t / rng.uniform(0.12, 0.22))
    ts = t[: int(0.25 * SFREQ)]
    noise = rng.standard_normal(ts.size)
    snare = (0.7 * np.diff(noise, prepend=0.0) * np.exp(-ts / rng.uniform(0.05, 0.09))
             + 0.5 * np.sin(2 * np.pi * rng.uniform(170, 230) * ts) * np.exp(-ts / 0.05))
    th = t[: int(0.3 * SFREQ)]
    hiss = np.diff(np.diff(rng.standard_normal(th.size), prepend=0.0), prepend=0.0)
    hat_closed = 0.35 * hiss * np.exp(-th / 0.018)
    hat_open = 0.3 * hiss * np.exp(-th / 0.09)
    return {"kick": kick, "snare": snare, "hat": hat_closed, "open": hat_open}


def generate_song(song_id: int, *, bpm: float, seconds: float, seed: int = 0) -> np.ndarray:
    """Generate one song.

    Parameters
    ----------
    song_id : int
        Song number; with ``seed`` it picks the key, progression, patterns and timbres.
    bpm : float
        Tempo in beats per minute.
    seconds : float
        Duration in seconds.
    seed : int
        Random seed; the same (song_id, bpm, seconds, seed) give the same samples.

    Returns
    -------
    audio : ndarray, shape (round(seconds * 22050),), float32, peak 0.9
    """
    rng = np.random.default_rng([int(seed), int(song_id), 7919])
    n = int(round(seconds * SFREQ))
    if n <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    beat = 60.0 / float(bpm)
    beat_n = beat * SFREQ
    bar_beats = 4
    bars_per_section = 8 if seconds > 60 else 2
    n_bars = int(np.ceil(seconds / (bar_beats * beat))) + 1

    root = 45 + int(rng.integers(0, 12))  # bass register, A2..G#3
    scale = _MAJOR if rng.random() < 0.5 else _MINOR
    progression = [_PROGRESSIONS[i] for i in rng.permutation(len(_PROGRESSIONS))[:2]]
    kit = _drum_kit(rng)
    kick_extra = rng.random(8) < 0.25  # extra kicks on eighth notes
    bass_pattern = rng.random(8) < 0.6
    bass_pattern[0] = True
    pad_rolloff = rng.uniform(0.9, 1.6)
    lead_rolloff = rng.uniform(0.8, 1.5)
    lead_harm = int(rng.integers(3, 9))
    swing = rng.uniform(0.0, 0.08)

    drums = np.zeros(n)
    bass = np.zeros(n)
    chords = np.zeros(n)
    lead = np.zeros(n)
    melody_degree = int(rng.integers(0, 7))
    cache: dict[tuple, np.ndarray] = {}

    def tone(note: int, length: int, **kwargs) -> np.ndarray:
        # notes repeat bar after bar: synthesise each distinct one once
        key = (int(note), int(length), tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = _tone(float(_midi_hz(note)), int(length), **kwargs)
        return cache[key]

    for bar in range(n_bars):
        section_name = _FORM[(bar // bars_per_section) % len(_FORM)]
        use_drums, use_bass, use_chords, use_lead, bright, hat_div = _SECTIONS[section_name]
        prog = progression[(bar // bars_per_section) % 2]
        degree = prog[bar % len(prog)]
        chord_degrees = np.array([degree, degree + 2, degree + 4])
        chord_notes = root + 12 + scale[chord_degrees % 7] + 12 * (chord_degrees // 7)
        bar_start = bar * bar_beats * beat_n
        if use_chords:
            length = int(bar_beats * beat_n)
            harm = 2 + int(10 * bright)
            for note in chord_notes:
                _add(chords, int(bar_start), tone(
                    note, length, harmonics=harm, rolloff=pad_rolloff,
                    attack_s=0.08 + 0.3 * (1 - bright), decay_s=2.5 * bar_beats * beat, detune=0.004,
                ))
        for eighth in range(2 * bar_beats):
            pos = bar_start + (eighth + (swing if eighth % 2 else 0.0)) * beat_n / 2
            if use_drums:
                if eighth % 4 == 0 or kick_extra[eighth]:
                    _add(drums, int(pos), kit["kick"])
                if eighth % 4 == 2:
                    _add(drums, int(pos), kit["snare"] * (0.8 + 0.2 * bright))
            if use_bass and bass_pattern[eighth]:
                note = root + scale[degree % 7] - 12 * (eighth % 4 == 3)
                _add(bass, int(pos), tone(
                    note, int(0.45 * beat_n), harmonics=6, rolloff=1.2,
                    attack_s=0.005, decay_s=0.35 * beat,
                ))
        if use_drums and hat_div:
            for step in range(bar_beats * hat_div):
                pos = bar_start + step * beat_n / hat_div
                hat = kit["open"] if (hat_div == 4 and step % 8 == 6) else kit["hat"]
                _add(drums, int(pos), hat * (0.6 + 0.4 * (step % 2 == 0)) * (0.5 + bright))
        if use_lead:
            for eighth in range(2 * bar_beats):
                if rng.random() < 0.35:
                    continue  # rest
                melody_degree = int(np.clip(melody_degree + rng.integers(-2, 3), 0, 13))
                note = root + 24 + scale[melody_degree % 7] + 12 * (melody_degree // 7)
                dur = int(beat_n / 2 * (2 if rng.random() < 0.3 else 1))
                _add(lead, int(bar_start + eighth * beat_n / 2), tone(
                    note, dur, harmonics=lead_harm, rolloff=lead_rolloff,
                    attack_s=0.01, decay_s=0.6 * beat, detune=0.002,
                ))
    mix = 0.9 * drums + 0.7 * bass + 0.35 * chords + 0.45 * lead
    fade = min(n // 4, int(2.0 * SFREQ))
    if fade:
        mix[:fade] *= np.linspace(0.0, 1.0, fade) ** 0.5
        mix[-fade:] *= np.linspace(1.0, 0.0, fade) ** 0.5
    peak = float(np.max(np.abs(mix)))
    if peak > 0:
        mix *= 0.9 / peak
    return mix.astype(np.float32)


def load_excerpt(path, *, start_s: float = 0.0, seconds: float | None = None) -> np.ndarray:
    """An excerpt of a recorded music file, mono at :data:`SFREQ`.

    Parameters
    ----------
    path : str or Path
        Audio file (wav, flac, ogg, mp3; any rate, any number of channels).
    start_s : float
        Where the excerpt starts in the file, in seconds.
    seconds : float, optional
        Excerpt length in seconds (default: to the end of the file).

    Returns
    -------
    audio : ndarray, shape (n_samples,), float32

    Raises
    ------
    DataFormatError
        The file cannot be decoded, or is shorter than ``start_s + seconds`` (the message names the
        file's length and the fix).
    """
    from eegmusic.stream.stimulus import read_audio

    check_excerpt(path, start_s=start_s, seconds=seconds)
    # only the excerpt (and a margin for the resampler) is decoded: a bench reads 30 s of 4-min tracks
    return read_audio(path, sfreq=SFREQ, start_s=float(start_s), seconds=seconds)


def check_excerpt(path, *, start_s: float = 0.0, seconds: float | None = None) -> float:
    """Check, without decoding it all, that a file is audio holding the requested excerpt.

    Parameters
    ----------
    path : str or Path
    start_s, seconds : float
        As in :func:`load_excerpt`.

    Returns
    -------
    length_s : float
        The file's length in seconds.

    Raises
    ------
    DataFormatError
        Missing or undecodable file, one shorter than the excerpt, or (without ``seconds``) less than
        :data:`MIN_EXCERPT_S` of music after ``start_s``.
    """
    import soundfile
    from eegmusic.stream.errors import DataFormatError, require_readable
    from eegmusic.stream.stimulus import check_name_opens, decoder_notes_aside, decoder_words, wav_truncation

    require_readable(path)
    check_name_opens(path)
    try:
        with decoder_notes_aside(path):
            length_s = float(soundfile.info(str(path)).duration)
    except Exception as error:  # libsndfile's errors carry no common type
        detail = decoder_words(error, path)[:100] if str(error) else type(error).__name__
        raise DataFormatError(
            f"{path}: cannot be decoded as audio ({detail}); pass wav, flac, ogg or mp3 files"
        ) from error
    start_s = float(start_s)
    if start_s < 0:
        raise DataFormatError(f"{path}: the excerpt cannot start at {start_s:g} s; pass --music-start >= 0")
    if seconds is None:  # to the end of the file
        if length_s - start_s < MIN_EXCERPT_S:
            if start_s:
                raise DataFormatError(
                    f"{path}: {length_s:.3g} s long, so --music-start {start_s:g} s leaves "
                    f"{max(length_s - start_s, 0.0):.3g} s of it, less than the {MIN_EXCERPT_S:g} s needed; "
                    "use an earlier --music-start or a longer track"
                )
            raise DataFormatError(f"{path}: {length_s:.3g} s long, shorter than the {MIN_EXCERPT_S:g} s of "
                                  "music needed; use a longer track")
        return length_s
    end_s = start_s + float(seconds)
    if end_s > length_s + 1e-6:
        cut = wav_truncation(path)
        if cut is not None:   # the track is long enough: its copy is not
            raise DataFormatError(
                f"{path}: holds {length_s:.1f} s, shorter than the requested excerpt "
                f"{start_s:g}-{end_s:g} s, but its header declares {cut[0]:.1f} s: the file is cut off; copy "
                "the whole file again"
            )
        raise DataFormatError(
            f"{path}: {length_s:.1f} s long, shorter than the requested excerpt "
            f"{start_s:g}-{end_s:g} s; use a shorter --duration, an earlier --music-start, "
            "or a longer track"
        )
    return length_s
