"""Score a trained model on the held-out part of a dataset, beside trivial baselines.

:func:`evaluate` reads a model file's ``eegmusic`` metadata, rebuilds the window dataset and the very
split the model was trained with (data folder, songs, subjects, split kind, seed, hop), runs the ONNX
model on the test windows with onnxruntime and scores four predictors on the same windows:

========================  ========================================================================
``model``                 the model on the test EEG
``global_mean``           the mean mel-dB window of the training part
``song_mean``             the mean mel-dB window of the test window's song (oracle identity)
``shuffled_eeg``          the model on the test EEG windows permuted across windows
========================  ========================================================================

Metrics (:mod:`offline_training.metrics`): MSE, cosine and Pearson per 1-s window (the published
protocol), **dynamic r** (per mel band, Pearson over time, averaged over bands and held-out blocks),
song accuracy (EEG2Mel protocol, :mod:`offline_training.song_classifier`: a classifier trained on true
mel windows of the training part labels the reconstructions) and the Fréchet distance between the
classifier embeddings of reconstructions and true windows.

Dynamic r: inside each contiguous held-out block (one song, one subject), the test windows at a
1-s hop are taken in time order and their outputs concatenated into one (128, 40 · n) series, for
prediction and target alike. Of each window's 44 frames only the 40 interior ones (2…41,
:data:`INTERIOR_FRAMES`) are used: the edge frames are framed with zero padding and dip in every
window, a once-per-second pattern that would reward any prediction with the same dips (the mean
window included). Windows of a denser hop are skipped so that each second is counted once.

With split ``all`` every window of the folder is test (a model trained on one recording scored on
another); the baselines and the classifier then come from the training part of the model's own
training data when that folder is still there, else from the scored folder itself (noted in the
results, since that is in-sample for the baselines).

Files written to ``out_dir``: ``metrics.json``, ``metrics.md`` (a table), ``reconstruction.png``
(target vs reconstruction over a few consecutive windows), ``reconstruction.wav`` and ``target.wav``
(the longest held-out block, up to ``max_wav_s``, vocoded the same way: through
:class:`decoder.vocoder.StreamingVocoder` when that module is present, else Griffin-Lim).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
from eegmusic.decoder import melspec
from eegmusic.decoder.modelfile import ModelInfo, info_from_session, open_session
from eegmusic.offline_training import baselines, metrics
from eegmusic.offline_training.song_classifier import SongClassifier
from eegmusic.stream.errors import ConfigError, DataFormatError, ModelError
from eegmusic.stream.spec import MODEL_SFREQ, WINDOW_SAMPLES

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

INTERIOR_FRAMES = slice(
    -(-(melspec.N_FFT // 2) // melspec.HOP_LENGTH),
    (melspec.AUDIO_SFREQ - melspec.N_FFT // 2) // melspec.HOP_LENGTH + 1,
)
"""Frames 2…41 of a 44-frame window: those whose 2048-sample STFT window lies wholly inside the 1-s
segment. The edge frames see the zero padding of centre=True framing and are quieter in every window
alike; concatenated over windows they form a once-per-second pattern that any prediction with the same
edges (even the constant mean window) would "track". Dynamic r therefore uses interior frames only."""

N_INTERIOR_FRAMES = len(range(melspec.FRAMES_PER_WINDOW)[INTERIOR_FRAMES])

CLASSIFIER_MAX_WINDOWS = 6000
"""Training windows the song classifier is fitted on at most (a seeded subsample beyond)."""

FRECHET_DIMS = 8
"""Leading classifier embedding dimensions compared by the Fréchet distance."""

CHUNK_WINDOWS = 1024
"""Test windows scored per chunk (whole blocks; bounds memory on large test parts)."""


def evaluate(
    data_dir,
    model_path,
    split: str | None,
    out_dir,
    *,
    seed: int = 0,
    batch_size: int = 256,
    max_wav_s: float = 10.0,
    n_plot_windows: int = 6,
    progress: bool = True,
    chunk_windows: int = CHUNK_WINDOWS,
    allow_short_stimulus: bool = False,
) -> dict:
    """Evaluate a model file on the test part of a dataset and write the results.

    Parameters
    ----------
    data_dir : str or Path
        NMED-T folder (with ``stimuli/``) to score on.
    model_path : str or Path
        ONNX model written by ``eegmusic train``.
    split : {"random", "block", "subject", "song", "all"} or None
        The split whose test part is scored; None uses the model's training split. The split is
        rebuilt with the model's training seed, so the same kind gives the same test windows.
    out_dir : str or Path
        Output folder (created).
    seed : int
        Seed of the EEG shuffle and of the classifier's training subsample.
    batch_size : int
        Windows per onnxruntime call.
    max_wav_s : float
        Longest WAV reconstruction in seconds.
    n_plot_windows : int
        Consecutive windows drawn in ``reconstruction.png``.
    progress : bool
        Show a progress bar on stderr.
    chunk_windows : int
        Test windows scored together (whole blocks at a time); bounds the memory used.
    allow_short_stimulus : bool
        Score against a stimulus shorter than its EEG (silence after its end); refused otherwise.

    Returns
    -------
    dict
        The content of ``metrics.json``: ``results[predictor][metric]`` (None where undefined) plus
        provenance, counts and notes.

    Raises
    ------
    ModelError
        Missing, unreadable or non-eegmusic model file.
    DataFormatError
        Data folder missing, or a song without stimulus audio.
    ConfigError
        Unknown split, or a split that leaves the test part empty.
    """
    from eegmusic.offline_training.dataset import WindowDataset
    from eegmusic.offline_training.splits import SPLIT_KINDS, make_split
    from eegmusic.stream.progress import progress_bar

    if split is not None and split not in SPLIT_KINDS:
        raise ConfigError(f"unknown split '{split}'; use one of {', '.join(SPLIT_KINDS)}")
    session, info = load_model(model_path)
    training = info.metadata.get("training") or {}
    split = split or str(training.get("split", "block"))
    split_seed = int(training.get("seed", 0))
    hop_s = float(training.get("hop_s", 1.0))
    data_dir = Path(data_dir)
    same_data = _same_folder(training.get("data"), data_dir)
    notes: list[str] = []
    songs = training.get("songs") if same_data and split != "all" else None
    subjects = training.get("subjects") if same_data and split != "all" else None
    dataset = WindowDataset(
        data_dir,
        songs=songs or None,
        subjects=_subject_ids(subjects),
        hop_s=hop_s,
        spec=info.preprocessing,
        target_offset_s=info.target_offset_s,
        allow_short_stimulus=allow_short_stimulus,
    )
    parts = make_split(dataset.index, split, seed=split_seed, hop_s=hop_s)
    if split != "all" and training.get("split") and split != training.get("split") and same_data:
        notes.append(
            f"split '{split}' differs from the model's training split '{training.get('split')}': "
            f"test windows may have been trained on"
        )
    if split != "all" and not same_data:
        notes.append(
            f"scored on {data_dir}, not the model's training data {training.get('data')}: "
            f"the split is of this folder"
        )

    test_rows = parts.test
    reference, reference_rows, reference_note = _reference_part(dataset, parts, training, info, split)
    if reference_note:
        notes.append(reference_note)
    logger.info("evaluating %s on %d test windows of %s (split %s)", info.path.name, len(test_rows),
                data_dir, split)

    subject_codes = _subject_codes(info, dataset, test_rows, notes)
    global_mean, song_means = baselines.mean_mels(reference, reference_rows)
    test_songs = dataset.index["song"][test_rows]
    song_mean_defined = baselines.predict_song_mean(song_means, np.unique(test_songs)) is not None
    if not song_mean_defined:
        notes.append("song mean baseline undefined: a test song has no training windows")
    classifier, classifier_note = _fit_classifier(reference, reference_rows, seed=seed)
    if classifier_note:
        notes.append(classifier_note)
    blocks = block_rows(dataset.index, test_rows, parts.test_block)
    chains = [blocks[k][one_per_second(dataset.index, rows)] for k, rows in enumerate(blocks)]
    shown = chains[int(np.argmax([len(rows) for rows in chains]))]
    n_wav = max(1, int(max_wav_s))
    shown = shown[:max(n_wav, n_plot_windows)]

    # One pass over chunks of whole blocks: memory stays bounded by the chunk, not the test part.
    order = baselines.shuffled_order(len(test_rows), seed=seed)
    position = np.empty(int(test_rows.max()) + 1, dtype=np.int64)
    position[test_rows] = np.arange(len(test_rows))
    accumulators = {name: MetricAccumulator(classifier) for name in PREDICTORS}
    if not song_mean_defined:
        accumulators["song_mean"] = None
    shown_target = shown_pred = None
    with progress_bar(total=len(test_rows), desc="evaluate", unit="win", disable=not progress,
                      leave=False) as bar:
        for chunk in _chunks_of_blocks(range(len(blocks)), [len(b) for b in blocks], chunk_windows):
            rows = np.concatenate([blocks[k] for k in chunk])
            pos = position[rows]
            codes = None if subject_codes is None else subject_codes[pos]
            shuffled_codes = None if subject_codes is None else subject_codes[order[pos]]
            target = dataset.mel(rows)
            songs = dataset.index["song"][rows]
            predictions = {
                "model": run_model(session, info, dataset.eeg(rows), codes, batch_size=batch_size),
                "shuffled_eeg": run_model(session, info, dataset.eeg(test_rows[order[pos]]), shuffled_codes,
                                          batch_size=batch_size),
                "global_mean": baselines.predict_global_mean(global_mean, len(rows)),
                "song_mean": baselines.predict_song_mean(song_means, songs) if song_mean_defined else None,
            }
            local = {int(row): k for k, row in enumerate(rows)}
            dynamic = [np.array([local[int(r)] for r in chains[k]], dtype=np.int64) for k in chunk]
            for name, accumulator in accumulators.items():
                if accumulator is not None:
                    accumulator.add(predictions[name], target, songs, dynamic)
            if shown_target is None and int(shown[0]) in local:
                at = np.array([local[int(r)] for r in shown], dtype=np.int64)
                shown_target, shown_pred = target[at], predictions["model"][at]
            bar.update(len(rows))
    results = {name: None if acc is None else acc.result() for name, acc in accumulators.items()}
    known_songs = set() if classifier is None else set(classifier.classes_.tolist())
    if classifier is not None and set(np.unique(test_songs).tolist()) - known_songs:
        notes.append("song accuracy undefined: the classifier never saw a test song (its training part "
                     "lacks it); the Fréchet distance is still reported")
        for row in results.values():
            if row is not None:
                row["song_accuracy"] = None

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {
        "model": str(info.path),
        "model_name": info.model_name,
        "output_kind": info.output_kind,
        "data": str(data_dir),
        "split": split,
        "split_seed": split_seed,
        "shuffle_seed": seed,
        "hop_s": hop_s,
        "n_test_windows": int(len(test_rows)),
        "n_reference_windows": int(len(reference_rows)),
        "n_dynamic_blocks": len(chains),
        "n_dynamic_frames": int(sum(len(rows) for rows in chains) * N_INTERIOR_FRAMES),
        "test_songs": sorted(int(s) for s in np.unique(test_songs)),
        "results": {name: results[name] for name in PREDICTORS},
        "notes": notes,
    }
    (out_dir / "metrics.md").write_text(metrics_table(summary))
    plot_reconstruction(shown_target[:n_plot_windows], shown_pred[:n_plot_windows],
                        out_dir / "reconstruction.png",
                        title=f"{info.model_name} on {_describe_rows(dataset, shown[:n_plot_windows])}")
    raw_audio = None
    if info.output_kind == "audio":
        shown_codes = None if subject_codes is None else subject_codes[position[shown[:n_wav]]]
        raw_audio = run_model_audio(session, info, dataset.eeg(shown[:n_wav]), shown_codes)
    summary["wav"] = write_wavs(out_dir, shown_target[:n_wav], shown_pred[:n_wav],
                                reconstruction_audio=raw_audio)
    summary["wav_excerpt"] = _describe_rows(dataset, shown[:n_wav])
    (out_dir / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    logger.info("wrote %s", out_dir / "metrics.json")
    return summary


def _chunks_of_blocks(block_ids, sizes: list[int], chunk_windows: int):
    """Yield lists of block ids whose blocks hold about ``chunk_windows`` windows together."""
    chunk, total = [], 0
    for block, size in zip(block_ids, sizes, strict=True):
        chunk.append(block)
        total += size
        if total >= chunk_windows:
            yield chunk
            chunk, total = [], 0
    if chunk:
        yield chunk


def load_model(model_path) -> tuple[object, ModelInfo]:
    """Open a model file with onnxruntime and read its ``eegmusic`` metadata.

    Returns
    -------
    session : onnxruntime.InferenceSession
    info : decoder.modelfile.ModelInfo

    Raises
    ------
    ModelError
        Missing, unreadable, or without (consistent) eegmusic metadata.
    """
    session = open_session(model_path)
    info = info_from_session(session, model_path)
    if info.window_samples != WINDOW_SAMPLES or abs(info.sfreq - MODEL_SFREQ) > 1e-6:
        raise ModelError(
            f"model {info.path.name} reads {info.window_samples}-sample windows at "
            f"{info.sfreq:g} Hz; evaluation needs {WINDOW_SAMPLES} at {MODEL_SFREQ:g} Hz "
            f"(NMED-T windows)"
        )
    return session, info


def run_model(
    session,
    info: ModelInfo,
    eeg: np.ndarray,
    subject_codes: np.ndarray | None = None,
    *,
    batch_size: int = 256,
    progress: bool = False,
    desc: str = "model",
) -> np.ndarray:
    """Run the model on EEG windows and return mel-dB windows.

    A waveform model (output kind ``audio``) is scored through the mel-dB of its audio
    (:func:`decoder.melspec.mel_db` per window, after resampling to 22050 Hz if needed).

    Parameters
    ----------
    session : onnxruntime.InferenceSession
    info : ModelInfo
    eeg : ndarray, shape (n_windows, 125, 125), float32
    subject_codes : ndarray, shape (n_windows,), int64, optional
        The ``subject`` input, for models that have one.
    batch_size : int
    progress : bool
    desc : str
        Progress bar label.

    Returns
    -------
    ndarray, shape (n_windows, 128, 44), float32
    """
    from eegmusic.stream.progress import progress_bar

    n = len(eeg)
    out = np.empty((n, melspec.N_MELS, melspec.FRAMES_PER_WINDOW), dtype=np.float32)
    with progress_bar(total=n, desc=desc, unit="win", disable=not progress, leave=False) as bar:
        for lo in range(0, n, batch_size):
            feeds = {info.input_name: np.ascontiguousarray(eeg[lo : lo + batch_size], dtype=np.float32)}
            if info.subject_input:
                feeds["subject"] = subject_codes[lo : lo + batch_size].astype(np.int64)
            (output,) = session.run([info.output_name], feeds)
            out[lo : lo + len(output)] = _as_mel(np.asarray(output), info)
            bar.update(len(output))
    return out


def run_model_audio(
    session, info: ModelInfo, eeg: np.ndarray, subject_codes: np.ndarray | None
) -> np.ndarray:
    """A waveform model's audio for consecutive windows, concatenated and at 22050 Hz.

    Parameters
    ----------
    eeg : ndarray, shape (n_windows, 125, 125), float32
        Consecutive 1-s windows in time order.
    subject_codes : ndarray, shape (n_windows,), optional

    Returns
    -------
    ndarray, shape (n_samples,), float32
    """
    feeds = {info.input_name: np.ascontiguousarray(eeg, dtype=np.float32)}
    if info.subject_input:
        feeds["subject"] = subject_codes.astype(np.int64)
    (output,) = session.run([info.output_name], feeds)
    audio = np.asarray(output, dtype=np.float32).reshape(-1)
    if abs(info.output_sfreq - melspec.AUDIO_SFREQ) > 1e-6:
        import librosa

        audio = librosa.resample(audio, orig_sr=info.output_sfreq, target_sr=melspec.AUDIO_SFREQ)
    return audio.astype(np.float32)


def _as_mel(output: np.ndarray, info: ModelInfo) -> np.ndarray:
    """Model output batch as mel-dB windows, shape (n, 128, 44)."""
    if info.output_kind == "mel_db":
        if output.shape[1:] != (melspec.N_MELS, melspec.FRAMES_PER_WINDOW):
            raise ModelError(
                f"model {info.path.name} outputs mel windows of shape {output.shape[1:]}; "
                f"evaluation needs ({melspec.N_MELS}, {melspec.FRAMES_PER_WINDOW})"
            )
        return output
    audio = output.astype(np.float32)
    if abs(info.output_sfreq - melspec.AUDIO_SFREQ) > 1e-6:
        import librosa

        audio = librosa.resample(audio, orig_sr=info.output_sfreq, target_sr=melspec.AUDIO_SFREQ, axis=-1)
    mel = melspec.mel_db(audio)
    if mel.shape[-1] != melspec.FRAMES_PER_WINDOW:
        raise ModelError(
            f"model {info.path.name} outputs {audio.shape[-1]} audio samples per window "
            f"({mel.shape[-1]} mel frames); evaluation needs 1 s "
            f"({melspec.AUDIO_SFREQ} samples)"
        )
    return mel


class MetricAccumulator:
    """Every metric of one predictor, accumulated over chunks of test windows.

    Per-window scores (MSE, cosine, Pearson, song accuracy) are summed over windows; dynamic r is
    kept per block (a block never spans two chunks) and averaged at the end; the classifier
    embeddings of predictions and targets are kept for the Fréchet distance. The results equal the
    functions of :mod:`offline_training.metrics` applied to the whole test part at once.

    Parameters
    ----------
    classifier : SongClassifier or None
        None skips song accuracy and the Fréchet distance.
    """

    def __init__(self, classifier: SongClassifier | None):
        self.classifier = classifier
        self.reset()

    def reset(self) -> None:
        """Forget everything added."""
        self._n_windows = 0
        self._n_values = 0
        self._squared_error = 0.0
        self._cosine = 0.0
        self._pearson = 0.0
        self._correct = 0
        self._block_r: list[float] = []
        self._pred_embedding: list[np.ndarray] = []
        self._target_embedding: list[np.ndarray] = []

    def add(self, pred: np.ndarray, target: np.ndarray, songs: np.ndarray,
            blocks_pos: list[np.ndarray] | None = None) -> None:
        """Add a chunk of windows.

        Parameters
        ----------
        pred, target : ndarray, shape (n_windows, n_mels, n_frames)
        songs : ndarray, shape (n_windows,)
            True song of each window.
        blocks_pos : list of ndarray of int, optional
            For each held-out block in the chunk, the positions into ``pred`` of its windows at a 1-s
            hop in time order; their interior frames are concatenated for dynamic r.
        """
        self._n_windows += len(pred)
        self._n_values += pred.size
        self._squared_error += metrics.mse(pred, target) * pred.size
        self._cosine += float(np.sum(metrics.cosine_per_window(pred, target)))
        self._pearson += float(np.sum(metrics.pearson_per_window(pred, target)))
        frames = INTERIOR_FRAMES
        for p in blocks_pos or []:
            if len(p):
                self._block_r.append(metrics.dynamic_r([concat_frames(pred[p][:, :, frames])],
                                                       [concat_frames(target[p][:, :, frames])]))
        if self.classifier is not None:
            self._correct += int(np.sum(self.classifier.predict(pred) == np.asarray(songs)))
            self._pred_embedding.append(self.classifier.embed(pred)[:, :FRECHET_DIMS])
            self._target_embedding.append(self.classifier.embed(target)[:, :FRECHET_DIMS])

    def result(self) -> dict:
        """``mse, cosine, pearson, dynamic_r, song_accuracy, frechet`` (None where undefined)."""
        if self._n_windows == 0:
            raise ValueError("no windows were added")
        result = {
            "mse": self._squared_error / self._n_values,
            "cosine": self._cosine / self._n_windows,
            "pearson": self._pearson / self._n_windows,
            "dynamic_r": float(np.mean(self._block_r)) if self._block_r else None,
            "song_accuracy": None,
            "frechet": None,
        }
        if self.classifier is not None:
            result["song_accuracy"] = self._correct / self._n_windows
            if self._n_windows >= 2:
                result["frechet"] = metrics.frechet_distance(np.concatenate(self._pred_embedding),
                                                             np.concatenate(self._target_embedding))
        return {key: (None if value is None or not math.isfinite(value) else float(value))
                for key, value in result.items()}


def concat_frames(windows: np.ndarray) -> np.ndarray:
    """Concatenate successive 1-s windows' frames in time order.

    Parameters
    ----------
    windows : ndarray, shape (n_windows, n_mels, n_frames)

    Returns
    -------
    ndarray, shape (n_mels, n_windows * n_frames)
    """
    return np.concatenate(list(windows), axis=1)


def block_rows(index: np.ndarray, test_rows: np.ndarray, test_block: np.ndarray) -> list[np.ndarray]:
    """Test rows of each contiguous held-out block, in time order.

    Parameters
    ----------
    index : ndarray, structured (song, subject, start)
    test_rows : ndarray of int, shape (n,)
    test_block : ndarray of int, shape (n,)
        Block id of each test row (:attr:`offline_training.splits.Split.test_block`).

    Returns
    -------
    list of ndarray of int
        Row numbers into ``index`` per block, blocks in order of their id.
    """
    blocks = []
    for block in np.unique(test_block):
        rows = test_rows[test_block == block]
        blocks.append(rows[np.argsort(index["start"][rows], kind="stable")])
    return blocks


def one_per_second(index: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions into ``rows`` (one block in time order) of its windows at a 1-s hop.

    Windows are taken greedily from the first on, each starting at least 1 s (125 samples) after
    the previous one, so a denser dataset hop does not count a second twice.

    Returns
    -------
    ndarray of int
    """
    chosen, next_start = [], None
    for k, row in enumerate(rows):
        start = int(index["start"][row])
        if next_start is None or start >= next_start:
            chosen.append(k)
            next_start = start + WINDOW_SAMPLES
    return np.array(chosen, dtype=np.int64)


def dynamic_blocks(index: np.ndarray, test_rows: np.ndarray, test_block: np.ndarray) -> list[np.ndarray]:
    """Rows of each contiguous test block at a 1-s hop, in time order (what dynamic r scores).

    Parameters
    ----------
    index : ndarray, structured (song, subject, start)
    test_rows : ndarray of int, shape (n,)
    test_block : ndarray of int, shape (n,)

    Returns
    -------
    list of ndarray of int
        Row numbers into ``index`` per block (:func:`block_rows` thinned by :func:`one_per_second`).
    """
    return [rows[one_per_second(index, rows)] for rows in block_rows(index, test_rows, test_block)]


def _same_folder(a, b: Path) -> bool:
    if not a:
        return False
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def _subject_ids(subjects):
    """Subject selection from metadata (participant ids or 1-based listener numbers), or None for all."""
    if not subjects:
        return None
    return list(subjects)


def _subject_codes(info: ModelInfo, dataset, rows: np.ndarray, notes: list[str]) -> np.ndarray | None:
    """The model's ``subject`` input for each window, or None for models without one."""
    if not info.subject_input:
        return None
    known = {str(s): k for k, s in enumerate(info.subjects)}
    ids = [dataset.subjects[int(k)] for k in dataset.index["subject"][rows]]
    unknown = sorted({s for s in ids if s not in known})
    if unknown:
        notes.append(f"subjects {', '.join(unknown)} are unknown to the model; fed as subject index 0")
    return np.array([known.get(s, 0) for s in ids], dtype=np.int64)


def _reference_part(dataset, parts, training: dict, info: ModelInfo, split: str):
    """The windows the baselines and the classifier are fitted on: (dataset, rows, note or None)."""
    if len(parts.train) > 0:
        return dataset, parts.train, None
    from eegmusic.offline_training.dataset import WindowDataset
    from eegmusic.offline_training.splits import make_split

    source = training.get("data")
    if source and Path(source).is_dir() and training.get("split") not in (None, "all"):
        try:
            own = WindowDataset(
                source,
                songs=training.get("songs") or None,
                subjects=_subject_ids(training.get("subjects")),
                hop_s=float(training.get("hop_s", 1.0)),
                spec=info.preprocessing,
                target_offset_s=info.target_offset_s,
            )
            own_parts = make_split(
                own.index,
                training["split"],
                seed=int(training.get("seed", 0)),
                hop_s=float(training.get("hop_s", 1.0)),
            )
            return own, own_parts.train, None
        except (DataFormatError, ConfigError) as error:
            logger.warning("cannot rebuild the model's training part from %s: %s", source, error)
    return (
        dataset,
        parts.test,
        (
            f"split '{split}' has no training part and the model's training data "
            f"is not available: baselines and song classifier are fitted on the "
            f"scored windows themselves (in-sample)"
        ),
    )


def _fit_classifier(dataset, rows: np.ndarray, *, seed: int) -> tuple[SongClassifier | None, str | None]:
    """Fit the song classifier on (a seeded subsample of) the reference windows' true mel."""
    songs = dataset.index["song"][rows]
    if len(np.unique(songs)) < 2:
        return None, "song accuracy undefined: the training part has fewer than 2 songs"
    if len(rows) > CLASSIFIER_MAX_WINDOWS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, CLASSIFIER_MAX_WINDOWS, replace=False))
    return SongClassifier().fit(dataset.mel(rows), dataset.index["song"][rows]), None


def _describe_rows(dataset, rows: np.ndarray) -> str:
    entry = dataset.index[rows[0]]
    start_s = entry["start"] / MODEL_SFREQ
    return (
        f"song {int(entry['song'])}, subject {dataset.subjects[int(entry['subject'])]}, "
        f"{start_s:g}-{start_s + len(rows):g} s"
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
        f"{summary['n_test_windows']} test windows, {summary['n_dynamic_blocks']} held-out blocks for "
        f"dynamic r.",
        "",
        header,
        "|" + "---|" * (len(METRIC_COLUMNS) + 1),
    ]
    for name in PREDICTORS:
        row = summary["results"].get(name)
        cells = [_format(None if row is None else row.get(key)) for key, _ in METRIC_COLUMNS]
        lines.append(f"| {PREDICTOR_TITLES[name]} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "MSE, cosine and Pearson are per 1-s window (flattened), as published; a constant spectrum "
        "already scores high on them. Dynamic r is the per-band correlation over time inside held-out "
        "blocks (interior frames 2-41 of successive 1-s windows): a prediction that is the same in every "
        "window scores about 0. Song accuracy: a classifier trained on true mel windows "
        "of the training part labels each reconstruction. Fréchet distance between classifier "
        "embeddings of reconstructions and true windows (lower is better).",
    ]
    if summary.get("notes"):
        lines += [""] + [f"- Note: {note}" for note in summary["notes"]]
    return "\n".join(lines) + "\n"


def plot_reconstruction(target: np.ndarray, pred: np.ndarray, path, *, title: str = "") -> None:
    """Draw target and reconstruction of consecutive windows one above the other.

    Parameters
    ----------
    target, pred : ndarray, shape (n_windows, n_mels, n_frames)
        Mel-dB windows in time order.
    path : str or Path
        PNG file to write.
    title : str
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target_frames, pred_frames = concat_frames(target), concat_frames(pred)
    fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True, constrained_layout=True)
    seconds = target_frames.shape[1] * melspec.FRAME_PERIOD_S
    extent = (0.0, seconds, 0, melspec.N_MELS)
    vmin, vmax = melspec.DB_FLOOR, float(max(target_frames.max(), pred_frames.max()))
    image = None
    for ax, frames, label in ((axes[0], target_frames, "target"), (axes[1], pred_frames, "reconstruction")):
        image = ax.imshow(
            frames,
            origin="lower",
            aspect="auto",
            extent=extent,
            vmin=vmin,
            vmax=vmax,
            cmap="magma",
            interpolation="nearest",
        )
        for k in range(1, len(target)):
            ax.axvline(k * melspec.FRAMES_PER_WINDOW * melspec.FRAME_PERIOD_S, color="white", lw=0.5, ls=":")
        ax.set_ylabel(f"{label}\nmel band")
    axes[1].set_xlabel("time (s, windows concatenated)")
    fig.colorbar(image, ax=axes, label="mel dB")
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)


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
