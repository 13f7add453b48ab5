"""What ``eegmusic evaluate`` writes besides ``metrics.json``: the Markdown table, the reconstruction
plot and the vocoded WAVs of target and reconstruction.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from eegmusic.decoder import melspec
from eegmusic.offline_training.scoring import concat_frames

logger = logging.getLogger(__name__)

PREDICTORS = ("model", "global_mean", "song_mean", "shuffled_eeg")
"""Rows of the results, in table order."""

PREDICTOR_TITLES = {
    "model": "model",
    "global_mean": "global mean mel",
    "song_mean": "song mean mel (oracle identity)",
    "shuffled_eeg": "model on shuffled EEG",
}

METRIC_COLUMNS = (
    ("mse", "MSE (dB²)"),
    ("cosine", "cosine"),
    ("pearson", "Pearson"),
    ("dynamic_r", "dynamic r"),
    ("song_accuracy", "song accuracy"),
    ("frechet", "Fréchet dist."),
)


def _format(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def metrics_table(summary: dict) -> str:
    """Markdown table of the results: one row per predictor, one column per metric.

    Parameters
    ----------
    summary : dict
        The dict returned by :func:`evaluate`.

    Returns
    -------
    str
    """
    header = "| predictor | " + " | ".join(title for _, title in METRIC_COLUMNS) + " |"
    lines = [
        f"# Evaluation of {Path(summary['model']).name} ({summary['model_name']})",
        "",
        f"Data `{summary['data']}`, split `{summary['split']}` (seed {summary['split_seed']}), "
        f"{summary['n_test_windows']} test windows"
        + (f" starting {summary['phase_s']:g} s off the training grid" if summary.get("phase_s") else "")
        + f", {summary['n_dynamic_blocks']} held-out blocks for dynamic r.",
        "",
        header,
        "|" + "---|" * (len(METRIC_COLUMNS) + 1),
    ]
    for name in PREDICTORS:
        row = summary["results"].get(name)
        cells = [_format(None if row is None else row.get(key)) for key, _ in METRIC_COLUMNS]
        lines.append(f"| {PREDICTOR_TITLES[name]} | " + " | ".join(cells) + " |")
    chance, n_songs = summary.get("song_accuracy_chance"), summary.get("songs_classified")
    chance_text = (f" (chance {chance:.3f}, one of {n_songs} pieces of music; below chance, it names "
                   "another piece more often than a guess would)"
                   if chance and n_songs and n_songs > 1 else "")
    lines += [
        "",
        "MSE, cosine and Pearson are per 1-s window (flattened), as published; a constant spectrum "
        "already scores high on them. Dynamic r is the per-band correlation over time inside held-out "
        "blocks (interior frames 2-41 of successive 1-s windows): a prediction that is the same in every "
        "window scores near 0, unless the music repeats within the window, which the mean window's own "
        "movement can follow (the means score below or above 0 by that). Song accuracy: a classifier "
        f"trained on true mel windows of the training part labels each reconstruction{chance_text}. "
        "Fréchet distance between classifier "
        "embeddings of reconstructions and true windows (lower is better); it compares the two sets, not "
        "pairs, so the shuffled-EEG row's equals the model's. The shuffled-EEG row gives each window the "
        "EEG of another stimulus second (never another listener's EEG of the same second).",
    ]
    if summary.get("notes"):
        lines += [""] + [f"- Note: {note}" for note in summary["notes"]]
    return "\n".join(lines) + "\n"


def data_name(data) -> str:
    """A data path as a figure's title names it: its last part (``/tmp/sim/`` → ``sim``)."""
    return Path(data).name or str(data)


def reconstruction_title(summary: dict, excerpt: str) -> str:
    """The reconstruction plot's title: model, data, split and excerpt, then the model's dynamic r beside
    its baselines from the same evaluation (``summary``: :func:`evaluate`'s dict, ``results`` filled).

    It named only the model and the excerpt: a picture of a reconstruction with no score and no baseline
    could not be read against the table printed by the same command.
    """
    scores = []
    for name, label in (("model", "model"), ("shuffled_eeg", "shuffled EEG"), ("global_mean", "global mean"),
                        ("song_mean", "song mean")):
        row = summary["results"].get(name)
        scores.append(f"{label} {_format(None if row is None else row.get('dynamic_r'))}")
    return (f"{summary['model_name']} on {data_name(summary['data'])}, {summary['split']} split: {excerpt}\n"
            f"dynamic r over all {summary['n_test_windows']} test windows: " + ", ".join(scores))


def plot_reconstruction(target: np.ndarray, pred: np.ndarray, path, *, title: str = "",
                        start_s: float | None = None, starts_s=None) -> None:
    """Write :func:`draw_reconstruction` to ``path`` (a PNG) and close the figure."""
    fig = draw_reconstruction(target, pred, title=title, start_s=start_s, starts_s=starts_s)
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=100)
    plt.close(fig)


def draw_reconstruction(target: np.ndarray, pred: np.ndarray, *, title: str = "",
                        start_s: float | None = None, starts_s=None):
    """Draw target and reconstruction of consecutive windows one above the other.

    Each window is drawn over the second of EEG it was cut from: its 44 frames (1.02 s of mel hops)
    are scaled to its 1 s, so the axis keeps to the recording's seconds however many windows are
    drawn (end to end at 1.02 s each, six windows from 6 s ended at 12.13 s).

    Parameters
    ----------
    target, pred : ndarray, shape (n_windows, n_mels, n_frames)
        Mel-dB windows in time order.
    title : str
    start_s : float, optional
        Where the first window's EEG starts in its recording: the time axis reads the recording's seconds,
        as the title does (it read 0-6 s under a title of 9-15 s); without it, seconds from the first
        window. The windows are taken 1 s apart.
    starts_s : sequence of float, shape (n_windows,), optional
        Where each window's EEG starts in its recording (s); overrides ``start_s``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from eegmusic.stream.spec import MODEL_SFREQ, WINDOW_SAMPLES

    window_s = WINDOW_SAMPLES / MODEL_SFREQ
    in_recording = start_s is not None or starts_s is not None
    if starts_s is None:
        origin = 0.0 if start_s is None else float(start_s)
        starts_s = origin + window_s * np.arange(len(target))
    starts_s = np.asarray(starts_s, dtype=float)
    fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True, constrained_layout=True)
    vmin, vmax = melspec.DB_FLOOR, float(max(np.max(target), np.max(pred)))
    image = None
    for ax, windows, label in ((axes[0], target, "target"), (axes[1], pred, "reconstruction")):
        for k, (frames, start) in enumerate(zip(windows, starts_s, strict=True)):
            image = ax.imshow(frames, origin="lower", aspect="auto",
                              extent=(start, start + window_s, 0, melspec.N_MELS),
                              vmin=vmin, vmax=vmax, cmap="magma", interpolation="nearest")
            if k:
                ax.axvline(start, color="white", lw=0.5, ls=":")
        ax.set_xlim(starts_s[0], starts_s[-1] + window_s)
        ax.set_ylim(0, melspec.N_MELS)
        ax.set_ylabel(f"{label}\nmel band")
    axes[1].set_xlabel("time (s, from the first window)" if not in_recording else
                       "time in the recording (s, the EEG's; each 1-s window over its second)")
    fig.colorbar(image, ax=axes, label="mel dB")
    if title:
        fig.suptitle(title)
    return fig


def vocode(frames_db: np.ndarray) -> tuple[np.ndarray, str]:
    """Turn mel-dB frames into 22050-Hz audio.

    Uses the project's streaming vocoder (:class:`decoder.vocoder.StreamingVocoder`) when it is
    importable, else librosa's Griffin-Lim mel inversion.

    Parameters
    ----------
    frames_db : ndarray, shape (n_mels, n_frames)

    Returns
    -------
    audio : ndarray, shape (n_samples,), float32
    method : str
        ``"StreamingVocoder"`` or ``"griffin-lim"``.
    """
    try:
        from eegmusic.decoder.vocoder import StreamingVocoder
    except ImportError:
        StreamingVocoder = None  # noqa: N806
    if StreamingVocoder is not None:
        vocoder = StreamingVocoder()
        lag = int(getattr(vocoder, "latency_frames", 0))
        silence = np.full(frames_db.shape[0], melspec.DB_FLOOR, dtype=np.float32)
        frames = list(np.asarray(frames_db, dtype=np.float32).T) + [silence] * lag
        audio = np.concatenate([vocoder.process(frame) for frame in frames])
        return audio[lag * melspec.HOP_LENGTH :].astype(np.float32), "StreamingVocoder"
    import librosa

    audio = librosa.feature.inverse.mel_to_audio(
        melspec.db_to_power(frames_db),
        sr=melspec.AUDIO_SFREQ,
        n_fft=melspec.N_FFT,
        hop_length=melspec.HOP_LENGTH,
        power=2.0,
        fmin=melspec.FMIN,
        fmax=melspec.FMAX,
        n_iter=32,
    )
    return audio.astype(np.float32), "griffin-lim"


def write_wavs(
    out_dir, target: np.ndarray, pred: np.ndarray, *, reconstruction_audio: np.ndarray | None = None
) -> dict:
    """Write ``target.wav`` and ``reconstruction.wav`` for consecutive windows, vocoded alike.

    Parameters
    ----------
    out_dir : str or Path
    target, pred : ndarray, shape (n_windows, n_mels, n_frames)
        Consecutive 1-s windows in time order.
    reconstruction_audio : ndarray, shape (n_samples,), optional
        A waveform model's own audio at 22050 Hz, written instead of vocoding ``pred``.

    Returns
    -------
    dict
        File name to how it was made (vocoder name, or ``"model audio"``).
    """
    import soundfile

    written = {}
    for name, windows in (("target.wav", target), ("reconstruction.wav", pred)):
        if name == "reconstruction.wav" and reconstruction_audio is not None:
            audio, method = np.asarray(reconstruction_audio, dtype=np.float32), "model audio"
        else:
            audio, method = vocode(concat_frames(windows))
        audio = np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if peak > 1.0:
            audio = audio / peak
        soundfile.write(str(Path(out_dir) / name), audio, melspec.AUDIO_SFREQ, subtype="FLOAT")
        written[name] = method
    logger.info("wrote WAVs: %s", written)
    return written
