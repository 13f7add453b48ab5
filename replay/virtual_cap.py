"""Virtual listeners on any cap: simulated calibration sessions for montages other than NMED-T's.

``eegmusic simulate --montage NAME [--channels N] --sfreq HZ`` writes, instead of an NMED-T folder,
what ``eegmusic calibrate`` records from a real cap: one XDF calibration session per participant
(:mod:`replay.xdf_session` reads it, so ``train``, ``evaluate``, ``replay`` and ``info`` take it as
``--data DIR/S01.xdf``), with the songs' audio beside the XDF files::

    DIR/simulation.json     parameters; marks the folder as simulated (a rerun replaces it)
    DIR/song21.wav …        the stimuli, 22050 Hz mono
    DIR/S01.xdf …           EEG stream 'virtual-<montage>' (MNE's current name: virtual-colin27_1020
                            for standard_1020; type EEG, float32 µV, labels and
                            locations in mm) + marker stream 'virtual-<montage>-calibration'
                            (:mod:`replay.calibration_markers`: one play per song, back to back)

The EEG comes from the same forward model as the NMED-T simulation (:mod:`replay.forward_model`,
simulated on the GSN-HydroCel-129 net at the cap's rate) and is carried to the cap's electrodes by
spherical-spline interpolation of the scalp potential (:mod:`stream.interpolation`; positions in
MNE's head frame, :func:`stream.montage.head_positions`), plus independent electrode noise, then
average-referenced.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from eegmusic.replay import forward_model as fm
from eegmusic.replay.calibration_markers import DEFAULT_SUFFIX, encode
from eegmusic.replay.manifest import GENERATOR
from eegmusic.replay.music import SFREQ as AUDIO_SFREQ
from eegmusic.replay.music import generate_song
from eegmusic.replay.nmedt import SONGS
from eegmusic.stream.errors import ConfigError, StreamError
from eegmusic.stream.interpolation import spline_matrix
from eegmusic.stream.montage import head_positions, montage_labels, resolve_montage_name

logger = logging.getLogger(__name__)

ELECTRODE_NOISE_UV = 1.0
"""RMS of each virtual electrode's own white noise, in µV."""

SESSION_T0 = 1000.0
"""LSL time of each simulated session's first sample, in seconds."""

MAX_SFREQ = 4096.0


def cap_projection(cap_positions: np.ndarray) -> np.ndarray:
    """Spline weights from the simulator's 129-electrode GSN net to a cap's electrodes.

    Parameters
    ----------
    cap_positions : ndarray, shape (n_cap, 3)
        Head-frame positions in metres.

    Returns
    -------
    weights : ndarray, shape (n_cap, 129)
        ``cap_uv = weights @ net_uv`` for net potentials in :data:`forward_model.NET_CHANNELS` order.
    """
    net = head_positions(fm.NET_CHANNELS, montage="GSN-HydroCel-129")
    return spline_matrix(net, cap_positions)


def check_cap(montage: str, n_channels: int | None, sfreq: float) -> tuple[str, tuple[str, ...]]:
    """Resolve the montage and channel subset, check the rate; return (montage name, labels).

    Raises
    ------
    ConfigError
        Unknown montage, a channel count it does not have (or 1: the cap is average-referenced, which
        left a single electrode at zero, and ``info`` said "problems: none"), or a rate outside
        125 … 4096 Hz (below the models' 125 Hz, ``train`` and ``decode`` refused the simulation that
        ``simulate`` had just advised them) or one no short filter resamples to 125 Hz (333.3 Hz).
    """
    from eegmusic.stream.resample import resample_ratio
    from eegmusic.stream.spec import MODEL_SFREQ

    if not MODEL_SFREQ <= float(sfreq) <= MAX_SFREQ:
        raise ConfigError(f"--sfreq {sfreq:g} Hz is outside {MODEL_SFREQ:g} … {MAX_SFREQ:g} (the models read "
                          f"{MODEL_SFREQ:g} Hz); use an amplifier rate such as 250, 256, 500, 512 or 1000")
    try:   # 333.3 Hz was written, info said "problems: none", and train and decode then refused it
        resample_ratio(float(sfreq))
    except StreamError as error:
        raise ConfigError(f"--sfreq {str(error).removeprefix('stream rate ')}") from None
    if n_channels is not None and int(n_channels) < 2:
        what = "no electrode" if int(n_channels) == 0 else "a single electrode at zero"
        raise ConfigError(f"--channels {n_channels}: the cap is average-referenced, which leaves {what}; "
                          "keep 2 or more")
    name = resolve_montage_name(montage)
    return name, montage_labels(montage, n_channels)   # as typed: its refusal names what the user wrote


# Peak memory per second of song at the cap's rate, measured with ru_maxrss (standard_1020 at 250 and
# 1000 Hz, 1-3 songs; within ~20 %): the net simulation's working set, the cap's arrays, and the
# stimulus features that every song keeps until the sessions are written.
_WORK_BYTES_PER_SAMPLE = 5000.0
_CAP_BYTES_PER_SAMPLE_CHANNEL = 15.0
_KEPT_BYTES_PER_SAMPLE = 800.0
_AUDIO_WORK_BYTES_PER_S = 0.5e6


def _needs(song_seconds: list[float], n_subjects: int, n_channels: int, sfreq: float,
           music: bool) -> tuple[float, float]:
    """Estimated (peak memory, dataset size) in bytes of the XDF sessions of a virtual cap."""
    from eegmusic.replay.simulate import _BASE_BYTES

    longest, total = max(song_seconds), sum(song_seconds)
    memory = (_BASE_BYTES + (total * AUDIO_SFREQ * 4 if music else 0) + longest * _AUDIO_WORK_BYTES_PER_S
              + sfreq * (total * _KEPT_BYTES_PER_SAMPLE
                         + longest * (_WORK_BYTES_PER_SAMPLE + n_channels * _CAP_BYTES_PER_SAMPLE_CHANNEL)))
    # float32 samples and a float64 time stamp per sample, per session; the songs' 16-bit audio
    disk = n_subjects * total * sfreq * (4 * n_channels + 8) + total * AUDIO_SFREQ * 2
    return memory, disk


def simulate_sessions(out_dir, *, montage: str, n_channels: int | None = None, sfreq: float = 250.0,
                      n_songs: int = 3, n_subjects: int = 1, seconds: float | None = None, seed: int = 0,
                      snr: float = 0.03, audio_files=None, music_start_s: float = 0.0,
                      progress: bool = True) -> list[Path]:
    """Write simulated calibration sessions (one XDF per participant) for a cap.

    Parameters
    ----------
    out_dir : str or Path
        Folder to write (created if needed). A previous simulation there is replaced (its files only);
        any other non-empty folder is refused. A failed run removes what it wrote.
    montage : str
        An MNE standard montage (``standard_1020``, ``biosemi64``, …) or a board layout
        (``openbci8``, ``openbci16``, ``muse``).
    n_channels : int, optional
        Keep this many electrodes of the montage, spread over the scalp (all by default).
    sfreq : float
        The cap's rate in Hz.
    n_songs, n_subjects : int
        Generated songs (ignored with ``audio_files``) and participants (one session each).
    seconds : float, optional
        Length of each song (default: NMED-T-like lengths, or whole files).
    seed : int
    snr : float
        Evoked share of the EEG variance.
    audio_files : sequence of path, optional
        Recorded music to play instead of generated songs, one song each.
    music_start_s : float
        Start of the excerpt taken from each audio file, in seconds.
    progress : bool
        Show a progress bar.

    Returns
    -------
    sessions : list of Path
        The XDF files, one per participant.

    Raises
    ------
    ConfigError
        Unknown montage, bad channel count or rate, an ``out_dir`` holding other files, or a run larger
        than the memory or disk at hand.
    DataFormatError
        An audio file that cannot be read, holds NaN/Inf, or is shorter than the excerpt.
    OutputError
        An audio file inside ``out_dir``, or an ``out_dir`` that cannot be written.
    """
    from eegmusic.replay.simulate import (
        LOWER,
        mark_complete,
        participant_ids,
        plan_dataset,
        prepare_folder,
        writing_dataset,
    )
    from eegmusic.stream.atomic import output_lock

    name, labels = check_cap(montage, n_channels, sfreq)
    sfreq = float(sfreq)
    out = Path(out_dir).expanduser()
    audio_files = [Path(p) for p in audio_files] if audio_files else None
    song_ids = [21 + i for i in range(len(audio_files) if audio_files else int(n_songs))]
    subjects = participant_ids(int(n_subjects))
    # one simulate at a time into a folder, from the check of what it holds to the last file (a second
    # run with --overwrite deleted the first one's files as it wrote them)
    with output_lock(out, "simulate"):
        old_files, music = plan_dataset(
            out, song_ids, audio_files, music_start_s=music_start_s, seconds=seconds,
            needs=lambda lengths: _needs(lengths, len(subjects), len(labels), sfreq, bool(audio_files)),
            lower=LOWER + " or --sfreq",
        )
        sessions = [f"{subject}.xdf" for subject in subjects]
        created = prepare_folder(out, old_files, {
            "generator": GENERATOR, "montage": name, "channels": list(labels), "sfreq": sfreq,
            "songs": song_ids, "subjects": subjects, "sessions": sessions, "seconds": seconds,
            "seed": int(seed), "snr": float(snr),
            "audio_files": [str(p) for p in audio_files] if audio_files else None,
            "music_start_s": float(music_start_s) if audio_files else None, "complete": False,
        }, stimuli=False)
        with writing_dataset(out, created, replaced=bool(old_files)):
            written = _write_sessions(out, name, labels, sfreq, song_ids, subjects, music, seconds=seconds,
                                      seed=seed, snr=snr, progress=progress)
            mark_complete(out)
    return written


def _write_sessions(out: Path, name: str, labels, sfreq: float, song_ids: list[int], subjects: list[str],
                    music: list[np.ndarray] | None, *, seconds, seed: int, snr: float,
                    progress: bool) -> list[Path]:
    """Simulate the songs' features, then write one XDF session per participant."""
    import soundfile
    from eegmusic.replay.simulate import SIMULATED_DURATIONS_S
    from eegmusic.replay.xdf_writer import XDFWriter
    from eegmusic.stream.progress import progress_bar

    stream = f"virtual-{name}"
    positions = head_positions(labels, montage=name)
    projection = cap_projection(positions)
    songs = []
    for index, song_id in enumerate(song_ids):
        if music:
            audio = music[index]
            music[index] = None  # freed once its features are taken
        else:
            length = float(seconds) if seconds is not None else SIMULATED_DURATIONS_S[song_id]
            audio = generate_song(song_id, bpm=SONGS[song_id].bpm, seconds=length, seed=seed)
        wav = out / f"song{song_id}.wav"
        soundfile.write(str(wav), np.clip(audio, -1.0, 1.0), AUDIO_SFREQ, subtype="PCM_16")
        n_times = int(np.ceil(len(audio) / AUDIO_SFREQ * sfreq))  # the next play starts after its end
        envelopes, onsets = fm.stimulus_features(audio, audio_sfreq=AUDIO_SFREQ, sfreq=sfreq, n_times=n_times)
        songs.append((song_id, wav, len(audio) / AUDIO_SFREQ, envelopes, onsets))
    head = fm.head_model()
    written = []
    bar = progress_bar(total=len(subjects) * len(songs), desc="simulate", unit="recording",
                       disable=not progress, leave=False)
    with bar:  # on an error, no final progress line before its one-line message
        for index, subject in enumerate(subjects):
            participant = fm.draw_participant(np.random.default_rng([seed, index, 101]), head)
            path = out / f"{subject}.xdf"
            with XDFWriter(path) as xdf:
                eeg_id = xdf.add_stream(name=stream, stype="EEG", channel_format="float32",
                                        nominal_srate=sfreq, labels=list(labels), positions=positions,
                                        source_id=f"{stream}-{subject}")
                marker_id = xdf.add_stream(name=stream + DEFAULT_SUFFIX, stype="Markers",
                                           channel_format="string", nominal_srate=0.0, labels=["marker"],
                                           source_id=f"{stream}-{subject}-markers")
                xdf.write_samples(marker_id, [SESSION_T0], [encode("session_start", version=1,
                                                                   tracks=len(songs), audio_dir=".")])
                t_song = SESSION_T0
                for track, (song_id, wav, duration_s, envelopes, onsets) in enumerate(songs):
                    cap = _record(participant, envelopes, onsets, projection, sfreq=sfreq, snr=snr,
                                  rng=np.random.default_rng([seed, song_id, index, 202]))
                    stamps = t_song + np.arange(cap.shape[1]) / sfreq
                    xdf.write_samples(eeg_id, stamps, cap.T.astype(np.float32))
                    xdf.write_samples(marker_id, *_track_markers(track, wav, duration_s, t_song))
                    t_song = stamps[-1] + 1.0 / sfreq
                    bar.update(1)
                xdf.write_samples(marker_id, [t_song], [encode("session_end")])
                for stream_id in (eeg_id, marker_id):  # one clock: offset 0 (readers expect offsets)
                    for when in (SESSION_T0, t_song):
                        xdf.write_clock_offset(stream_id, when, 0.0)
            written.append(path)
            logger.debug("wrote %s: %d song%s, %d channels at %g Hz", path, len(songs),
                         "s" * (len(songs) != 1), len(labels), sfreq)
    return written


def _record(participant, envelopes, onsets, projection, *, sfreq, snr, rng) -> np.ndarray:
    """One participant's cap EEG for one song, µV, average reference: shape (n_cap, n_times)."""
    evoked, rest = fm.simulate_net(participant, envelopes, onsets, sfreq=sfreq,
                                   snr=float(np.clip(snr * participant.gain, 1e-4, 0.95)), rng=rng)
    cap = projection @ (evoked + rest)
    cap += rng.normal(0.0, ELECTRODE_NOISE_UV, cap.shape)
    return cap - cap.mean(axis=0, keepdims=True)


def _track_markers(track: int, wav: Path, duration_s: float, t_start: float) -> tuple[list, list]:
    """Marker stamps and texts of one play: start, a position every second, end."""
    positions = np.arange(0.0, duration_s, 1.0)
    stamps = [t_start + p for p in positions] + [t_start + duration_s]
    texts = [encode("track_start", track=track, file=wav.name, path=str(wav.resolve()), position_s=0.0,
                    duration_s=round(duration_s, 6), output_latency_s=0.0)]
    texts += [encode("position", track=track, position_s=float(p)) for p in positions[1:]]
    texts.append(encode("track_end", track=track, position_s=round(duration_s, 6)))
    return stamps, texts
