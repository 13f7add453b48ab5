"""Score a trained model on the held-out part of a dataset, beside trivial baselines.

:func:`evaluate` reads a model file's ``eegmusic`` metadata, rebuilds the window dataset and the very
split the model was trained with (data folder, songs, subjects, split kind, seed, hop), runs the ONNX
model on the test windows with onnxruntime and scores four predictors on the same windows:

========================  ========================================================================
``model``                 the model on the test EEG
``global_mean``           the mean mel-dB window of the training part
``song_mean``             the mean mel-dB window of the test window's song (oracle identity)
``shuffled_eeg``          the model on the test EEG windows permuted across windows, each window
                          given EEG of another stimulus second (not another listener's EEG of its
                          own second); None (n/a) when no such permutation exists
========================  ========================================================================

Metrics (:mod:`offline_training.metrics`): MSE, cosine and Pearson per 1-s window (the published
protocol), **dynamic r** (per mel band, Pearson over time, averaged over bands and held-out blocks),
song accuracy (EEG2Mel protocol, :mod:`offline_training.song_classifier`: a classifier trained on true
mel windows of the training part labels the reconstructions) and the Fréchet distance between the
classifier embeddings of reconstructions and true windows.

Dynamic r: inside each contiguous held-out block (one song, one subject), the test windows at a
1-s hop are taken in time order and their outputs concatenated into one (128, 40 · n) series, for
prediction and target alike. Of each window's 44 frames only the 40 interior ones (2…41,
:data:`scoring.INTERIOR_FRAMES`) are used: the edge frames are framed with zero padding and dip in every
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

The work is shared with three modules: :mod:`.inference` runs the model file, :mod:`.scoring` frames
dynamic r and accumulates every metric, :mod:`.report` writes the table, plot and WAVs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from eegmusic.decoder.modelfile import ModelInfo, training_metadata
from eegmusic.offline_training import baselines
from eegmusic.offline_training.inference import load_model, run_model, run_model_audio
from eegmusic.offline_training.report import (
    PREDICTORS,
    metrics_table,
    plot_reconstruction,
    reconstruction_title,
    write_wavs,
)
from eegmusic.offline_training.scoring import N_INTERIOR_FRAMES, MetricAccumulator, block_rows, one_per_second
from eegmusic.offline_training.song_classifier import SongClassifier
from eegmusic.stream.atomic import staged_files
from eegmusic.stream.errors import ConfigError, DataFormatError, ModelError
from eegmusic.stream.spec import MODEL_SFREQ

logger = logging.getLogger(__name__)

CLASSIFIER_MAX_WINDOWS = 6000
"""Training windows the song classifier is fitted on at most (a seeded subsample beyond)."""

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
    phase_s: float = 0.0,
) -> dict:
    """Evaluate a model file on the test part of a dataset and write the results.

    Parameters
    ----------
    data_dir : str or Path
        NMED-T folder (with ``stimuli/``) to score on.
    model_path : str or Path
        ONNX model written by ``eegmusic train``.
    split : {"random", "block", "subject", "song", "subject-block", "all"} or None
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
    phase_s : float
        Seconds in [0, the model's training hop) by which every window starts later than on the
        training grid. A decoder that fits the music at the grid's fixed phase (the quality benchmark
        caught the convnet and the rcnn doing so) scores lower off it; live windows have no fixed phase.

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
        Unknown split, or a split that leaves a part empty (the message offers ``--split all``).
    """
    from eegmusic.offline_training.dataset import WindowDataset
    from eegmusic.offline_training.splits import MUSIC_SPLITS, SPLIT_KINDS, make_split
    from eegmusic.stream.progress import progress_bar

    if split is not None and split not in SPLIT_KINDS:
        raise ConfigError(f"unknown split '{split}'; use one of {', '.join(SPLIT_KINDS)}")
    session, info = load_model(model_path)
    from eegmusic.decoder.modelfile import check_preprocessing_rate, resampler_note

    check_preprocessing_rate(info)   # else the recording's rate is blamed ("stream rate 125 Hz is below …")
    if note := resampler_note(info):
        logger.warning("%s", note)
    training = training_metadata(info)
    if split is None and training.get("split", "block") not in SPLIT_KINDS:   # not the user's: the file's
        raise ModelError(f"model file {model_path} names an unknown training split {training.get('split')!r} "
                         f"in its metadata (eegmusic knows {', '.join(SPLIT_KINDS)}); pass --split to choose "
                         "one, or export the model again with `eegmusic train`")
    split = split or training.get("split", "block")
    split_seed = int(training.get("seed", 0))
    hop_s = float(training.get("hop_s", 1.0))
    if not 0.0 <= phase_s < hop_s:
        raise ConfigError(f"--phase {phase_s:g} s must be in [0, {hop_s:g}) (the model's training hop), "
                          f"e.g. --phase {hop_s / 2:g}")
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
        phase_s=phase_s,
        spec=info.preprocessing,
        target_offset_s=info.target_offset_s,
        allow_short_stimulus=allow_short_stimulus,
        spec_channels=True,  # the model's channels by label: a 129-channel EGI file feeds its 125
        # the songs and listeners of the model's training split, gone from a folder simulated again since:
        # evaluate has no --songs/--subjects, so train's "pass one of those" was no fix
        missing_fix="the folder changed since the model was trained on it: pass --split all to score every "
                    "window it holds now, or --data the folder the model was trained on",
    )
    parts = make_split(dataset.index, split, seed=split_seed, hop_s=hop_s, command="evaluate",
                       music=dataset.music)
    if (phase_s > 0 and same_data and split in ("block", "subject-block")
            and split == training.get("split", split)):   # the split the model trained on, off its grid
        parts = _guarded_from_training(dataset, parts, split, split_seed, hop_s, phase_s, notes)
    if split != "all" and training.get("split") and split != training.get("split") and same_data:
        notes.append(
            f"split '{split}' differs from the model's training split '{training.get('split')}': "
            f"test windows may have been trained on"
        )
    shared = (not np.array_equal(dataset.music["music"], dataset.index["song"])
              or not np.array_equal(dataset.music["start"], dataset.index["start"]))
    if (same_data and shared and split in MUSIC_SPLITS and training.get("split") == split
            and training.get("split_by") != "music"):
        notes.append(
            f"the model was trained before splits held out music (its '{split}' parts were cut per play); "
            f"on this data, where plays share music, today's test part may hold windows it trained on: "
            f"train it again to score it held out"
        )
    if any(_same_folder(folder, data_dir) for folder in validation_folders(training.get("val_data"))):
        notes.append(
            f"{data_dir} is the model's --val-data, on which its epoch, target lag and settings were "
            f"chosen: these scores are not held out; score data the model never saw (a later excerpt)"
        )
    elif split == "all" and same_data:  # the other kinds hold out what the training split held out
        notes.append(
            f"split 'all' scores every window of {data_dir}, the model's own training data: its training "
            f"windows are among the scored ones (in-sample); pass its training split (the default) to "
            f"score held-out windows"
        )
    elif split != "all" and not same_data and not training.get("data"):  # not "training data None"
        notes.append(
            f"scored on {data_dir}; the model file does not name its training data (unknown), so the split "
            f"is of this folder and may not hold out what training did"
        )
    elif split != "all" and not same_data:
        notes.append(
            f"scored on {data_dir}, not the model's training data {training.get('data')}: "
            f"the split is of this folder"
        )

    test_rows = parts.test
    trained_targets = baselines.targets_trained_on(dataset, parts.train, test_rows)
    if trained_targets:   # random, subject: windows or listeners held out, not music
        notes.append(baselines.trained_music_note(trained_targets, len(test_rows), split))
    reference, reference_rows, reference_note = _reference_part(dataset, parts, training, info, split)
    if reference_note:
        notes.append(reference_note)
    logger.info("evaluating %s on %d test windows of %s (split %s)", info.path.name, len(test_rows),
                data_dir, split)

    subject_codes = _subject_codes(info, dataset, test_rows, notes)
    test_songs = dataset.index["song"][test_rows]
    # each test song's music over the training part (in another folder: its song of that number)
    global_mean, song_means = baselines.music_means(reference, reference_rows, np.unique(test_songs))
    other_music = _other_music(dataset, reference, np.unique(test_songs), set(song_means))
    if other_music:  # another folder's song of that number: its mean is no oracle of this one's
        for song in other_music:
            del song_means[song]
        notes.append(
            f"song mean baseline undefined: test song{'s' * (len(other_music) > 1)} "
            f"{', '.join(map(str, other_music))} of {data_dir} {'are' if len(other_music) > 1 else 'is'} "
            f"other music than the training data's song{'s' * (len(other_music) > 1)} of that number "
            f"(other stimulus audio); song accuracy is undefined for the same reason"
        )
    song_mean_defined = baselines.predict_song_mean(song_means, np.unique(test_songs)) is not None
    if not song_mean_defined and not other_music:
        notes.append("song mean baseline undefined: a test song has no training windows")
    classifier, classifier_note = _fit_classifier(reference, reference_rows, seed=seed)
    if classifier_note:
        notes.append(classifier_note)
    blocks = block_rows(dataset.index, test_rows, parts.test_block)
    chains = [blocks[k][one_per_second(dataset.index, rows)] for k, rows in enumerate(blocks)]
    shown = chains[int(np.argmax([len(rows) for rows in chains]))]
    n_wav = max(1, int(max_wav_s))
    shown = shown[:max(n_wav, n_plot_windows)]

    order, shuffle_note = baselines.shuffled_test_order(dataset.index, test_rows, seed=seed,
                                                        music=dataset.music)
    if shuffle_note:
        notes.append(shuffle_note)
    # One pass over chunks of whole blocks: memory stays bounded by the chunk, not the test part.
    position = np.empty(int(test_rows.max()) + 1, dtype=np.int64)
    position[test_rows] = np.arange(len(test_rows))
    accumulators = {name: MetricAccumulator(classifier) for name in PREDICTORS}
    if not song_mean_defined:
        accumulators["song_mean"] = None
    if order is None:
        accumulators["shuffled_eeg"] = None
    shown_target = shown_pred = None
    with progress_bar(total=len(test_rows), desc="evaluate", unit="win", disable=not progress,
                      leave=False) as bar:
        for chunk in _chunks_of_blocks(range(len(blocks)), [len(b) for b in blocks], chunk_windows):
            rows = np.concatenate([blocks[k] for k in chunk])
            pos = position[rows]
            codes = None if subject_codes is None else subject_codes[pos]
            target = dataset.mel(rows)
            songs = dataset.index["song"][rows]
            predictions = {
                "model": run_model(session, info, dataset.eeg(rows), codes, batch_size=batch_size),
                "shuffled_eeg": None,
                "global_mean": baselines.predict_global_mean(global_mean, len(rows)),
                "song_mean": baselines.predict_song_mean(song_means, songs) if song_mean_defined else None,
            }
            if order is not None:
                shuffled_codes = None if subject_codes is None else subject_codes[order[pos]]
                predictions["shuffled_eeg"] = run_model(session, info, dataset.eeg(test_rows[order[pos]]),
                                                        shuffled_codes, batch_size=batch_size)
            if not np.isfinite(predictions["model"]).all():  # its Fréchet distance died in an eigensolver
                bad = int(np.count_nonzero(~np.isfinite(predictions["model"])))
                raise ModelError(f"model {info.path.name} outputs {bad} NaN/Inf values on the test windows; "
                                 "it cannot be scored: retrain it (a diverged training exports such a model)")
            local = {int(row): k for k, row in enumerate(rows)}
            dynamic = [np.array([local[int(r)] for r in chains[k]], dtype=np.int64) for k in chunk]
            for name, accumulator in accumulators.items():
                if accumulator is not None:
                    accumulator.add(predictions[name], target, dataset.music["music"][rows], dynamic)
            if shown_target is None and int(shown[0]) in local:
                at = np.array([local[int(r)] for r in shown], dtype=np.int64)
                shown_target, shown_pred = target[at], predictions["model"][at]
            bar.update(len(rows))
    results = {name: None if acc is None else acc.result() for name, acc in accumulators.items()}
    # the classifier's classes are music ids (:func:`_fit_classifier`), another folder's song of the
    # same number but other music excluded
    music = dataset.music["music"]
    other_ids = {int(music[dataset.index["song"] == song][0]) for song in other_music}
    known_songs = set() if classifier is None else set(classifier.classes_.tolist()) - other_ids
    if classifier is not None and set(np.unique(music[test_rows]).tolist()) - known_songs:
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
        "phase_s": phase_s,
        "n_test_windows": int(len(test_rows)),
        # a classifier guessing among its songs: what song accuracy is read against
        "songs_classified": len(known_songs),
        "song_accuracy_chance": round(1.0 / len(known_songs), 4) if known_songs else None,
        "n_reference_windows": int(len(reference_rows)),
        "n_dynamic_blocks": len(chains),
        "n_dynamic_frames": int(sum(len(rows) for rows in chains) * N_INTERIOR_FRAMES),
        "test_songs": sorted(int(s) for s in np.unique(test_songs)),
        "results": {name: results[name] for name in PREDICTORS},
        "notes": notes,
    }
    # the five files replace an earlier evaluate's together: an interrupted one leaves the old set whole
    with staged_files(out_dir) as stage:
        (stage / "metrics.md").write_text(metrics_table(summary))
        plot_reconstruction(shown_target[:n_plot_windows], shown_pred[:n_plot_windows],
                            stage / "reconstruction.png",
                            title=reconstruction_title(summary,
                                                       _describe_rows(dataset, shown[:n_plot_windows])),
                            starts_s=dataset.index["start"][shown[:n_plot_windows]] / MODEL_SFREQ)
        raw_audio = None
        if info.output_kind == "audio":
            shown_codes = None if subject_codes is None else subject_codes[position[shown[:n_wav]]]
            raw_audio = run_model_audio(session, info, dataset.eeg(shown[:n_wav]), shown_codes)
        summary["wav"] = write_wavs(stage, shown_target[:n_wav], shown_pred[:n_wav],
                                    reconstruction_audio=raw_audio)
        summary["wav_excerpt"] = _describe_rows(dataset, shown[:n_wav])
        (stage / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
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


def validation_folders(val_data) -> list:
    """Where a model's ``--val-data`` lies: the folder itself, and for a session file (``.xdf``) also the
    folder that holds it. Only the ``.xdf`` suffix makes a file: a folder may have a dot in its name."""
    if val_data and Path(val_data).suffix.lower() == ".xdf":
        return [val_data, Path(val_data).parent]
    return [val_data]


def _guarded_from_training(dataset, parts, split: str, seed: int, hop_s: float, phase_s: float,
                           notes: list[str]):
    """``parts`` (the split of ``dataset``, read at window phase ``phase_s``) without the test windows that
    come within the split's guard of a window the model trained or chose its epoch on.

    The split of windows at another phase is cut as the model's was, chunk by chunk, but its test windows
    are not the ones the training split's guard kept clear: at phase 0.25 the last test window of a chunk
    came 0.75 s from a training window (0.10 s at phase 0.9), under the guard's 1 s. The model's own
    windows (phase 0, its split) are rebuilt here and the test part kept clear of them."""
    from eegmusic.offline_training.splits import Split, clear_of, contiguous_blocks, make_split

    index, music = dataset.windows_at_phase(0.0)
    trained = make_split(index, split, seed=seed, hop_s=hop_s, command="evaluate", music=music)
    clear = clear_of(dataset.music[parts.test], music[np.concatenate([trained.train, trained.val])])
    if clear.all():
        return parts
    if not clear.any():
        raise ConfigError(f"--phase {phase_s:g} s leaves no test window clear of the model's training "
                          f"windows by the split's 1-s guard; pass --phase 0")
    notes.append(f"--phase {phase_s:g} s: {int((~clear).sum())} of {len(clear)} test windows came within "
                 f"the split's 1-s guard of a window the model trained on (at phase 0) and are not scored")
    test = parts.test[clear]
    return Split(parts.train, parts.val, test, contiguous_blocks(dataset.index, test, hop_s=hop_s))


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


def _other_music(dataset, reference, songs, reference_songs: set) -> list[int]:
    """The ``songs`` whose music differs between ``dataset`` and the ``reference`` dataset (another folder,
    where the same song number may be other audio); none when the reference is the dataset itself."""
    if reference is dataset:
        return []
    return [int(song) for song in songs if int(song) in reference_songs
            and dataset.music_identity(int(song)) != reference.music_identity(int(song))]


def _reference_part(dataset, parts, training: dict, info: ModelInfo, split: str):
    """The windows the baselines and the classifier are fitted on: (dataset, rows, note or None)."""
    if len(parts.train) > 0:
        return dataset, parts.train, None
    from eegmusic.offline_training.dataset import WindowDataset
    from eegmusic.offline_training.splits import make_split

    source = training.get("data")
    if source and Path(source).exists() and training.get("split") not in (None, "all"):
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
                music=own.music,
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
    """Fit the song classifier on (a seeded subsample of) the reference windows' true mel.

    Its classes are pieces of music (:attr:`WindowDataset.music`), not song keys: in a folder of
    sessions each listener's play of a track is a song of its own, and the classifier told plays of
    the same audio apart by chance, under a chance level of 1/9 for 3 pieces heard by 3 listeners.
    Where every song is its own music (NMED-T, ``simulate``) the two are the same.
    """
    music = dataset.music["music"]
    if len(np.unique(music[rows])) < 2:
        return None, "song accuracy undefined: the training part has fewer than 2 pieces of music"
    if len(rows) > CLASSIFIER_MAX_WINDOWS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, CLASSIFIER_MAX_WINDOWS, replace=False))
    return SongClassifier().fit(dataset.mel(rows), music[rows]), None


def _describe_rows(dataset, rows: np.ndarray) -> str:
    entry = dataset.index[rows[0]]
    start_s = entry["start"] / MODEL_SFREQ
    return (
        f"song {int(entry['song'])}, subject {dataset.subjects[int(entry['subject'])]}, "
        f"{start_s:g}-{start_s + len(rows):g} s"
    )
