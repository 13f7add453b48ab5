"""Run an exported model file on EEG windows with onnxruntime, as :func:`evaluate.evaluate` scores it.

A mel model's output is checked for the (128, 44) window shape; a waveform model (output kind
``audio``) is scored through the mel-dB of its audio (:func:`decoder.melspec.mel_db` per window).
"""

from __future__ import annotations

import numpy as np
from eegmusic.decoder import melspec
from eegmusic.decoder.modelfile import ModelInfo, info_from_session, open_session
from eegmusic.stream.errors import ModelError
from eegmusic.stream.spec import MODEL_SFREQ, WINDOW_SAMPLES


def load_model(model_path, *, threads: int | None = None) -> tuple[object, ModelInfo]:
    """Open a model file with onnxruntime and read its ``eegmusic`` metadata.

    Parameters
    ----------
    model_path : str or Path
    threads : int, optional
        onnxruntime's intra-op threads; default: its own (one per core). A process that shares the
        cores with others (the quality bench's cells) gives its share.

    Returns
    -------
    session : onnxruntime.InferenceSession
    info : decoder.modelfile.ModelInfo

    Raises
    ------
    ModelError
        Missing, unreadable, or without (consistent) eegmusic metadata.
    """
    options = None
    if threads is not None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    session = open_session(model_path, sess_options=options)
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
            melspec.guard_mel_db(out[lo : lo + len(output)])   # as the live path does: the same frames scored
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
