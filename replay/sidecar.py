"""The recording sidecar (``<stem>.eegmusic.json``, BIDS: ``eegmusic.json``), checked in one place.

A sidecar says which audio file each stimulus onset of an EEG recording played (format in
:mod:`eegmusic.replay.mne_dataset` and docs/calibration.md). It comes from outside, often written by
hand, so everything in it is checked here before the dataset reader uses a value:

- the file: present, at most :data:`MAX_SIDECAR_BYTES`, JSON, an object;
- ``stimuli`` (required): a non-empty object; each key a non-empty annotation name, each value a
  path (text) relative to the sidecar's folder that stays inside that folder (no ``..``, no absolute
  path, no link out of it) and names an existing audio file;
- ``subject`` (optional): a name of printable text, at most 64 characters;
- ``audio_delay_s`` (optional): a finite number of seconds within ±:data:`MAX_AUDIO_DELAY_S`.

Every problem is one :class:`~eegmusic.stream.errors.DataFormatError` line naming the key, the
value found and the fix; unknown keys are ignored with a warning (a newer writer may add some).

Example
-------
>>> read_sidecar(Path("rec.eegmusic.json"), Path("rec_raw.fif"))  # doctest: +SKIP
{'stimuli': {'song1': PosixPath('/data/audio/song1.wav')}, 'subject': 'P01', 'audio_delay_s': 0.0}
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from eegmusic.stream.errors import DataFormatError, read_json

logger = logging.getLogger(__name__)

KEYS = ("stimuli", "subject", "audio_delay_s")
MAX_SIDECAR_BYTES = 1_000_000
MAX_AUDIO_DELAY_S = 10.0
MAX_SUBJECT_CHARS = 64
EXAMPLE = '{"stimuli": {"song1": "audio/song1.wav"}}'


def _shown(value) -> str:
    """A value as JSON, on one line, at most 60 characters."""
    text = json.dumps(value, ensure_ascii=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value) -> str:
    if isinstance(value, bool):
        return "true/false"
    return {dict: "an object", list: "a list", str: "text", int: "a number", float: "a number",
            type(None): "null"}.get(type(value), type(value).__name__)


def _audio_path(path: Path, key: str, value) -> Path:
    """The audio file ``stimuli[key]`` names, resolved; checked to exist inside the sidecar's folder."""
    where = f"{path}: stimuli[{_shown(key)}]"
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        raise DataFormatError(f"{where} is {_shown(value)} ({_kind(value)}), expected the audio file's path "
                              f'relative to the sidecar; write "{key}": "audio/{key}.wav"')
    folder = path.parent.resolve()
    audio = (folder / value).resolve()
    if Path(value).is_absolute() or not audio.is_relative_to(folder):
        raise DataFormatError(f"{where} = {_shown(value)} points outside the sidecar's folder {folder}; put "
                              "the audio inside it and give its path relative to the sidecar (no .., no /)")
    if not audio.is_file():
        what = "is a folder" if audio.is_dir() else "does not exist"
        shown = str(folder / value) if value.isprintable() else f"{_shown(value)} in {folder}"
        raise DataFormatError(f"{path}: stimulus {_shown(key)} names audio {shown}, which {what}; put "
                              "the file there or fix the sidecar")
    return audio


def _subject(path: Path, value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_SUBJECT_CHARS \
            or not value.isprintable():
        raise DataFormatError(f'{path}: "subject" is {_shown(value)} ({_kind(value)}), expected a name of at '
                              f'most {MAX_SUBJECT_CHARS} printable characters; write "subject": "P01" or '
                              "leave it out")
    return value.strip()


def _audio_delay(path: Path, value) -> float:
    if value is None:
        return 0.0
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or abs(value) > MAX_AUDIO_DELAY_S:
        raise DataFormatError(f'{path}: "audio_delay_s" is {_shown(value)} ({_kind(value)}), expected a '
                              f"number of seconds from -{MAX_AUDIO_DELAY_S:g} to {MAX_AUDIO_DELAY_S:g}; "
                              'write "audio_delay_s": 0.05 or leave it out')
    return float(value)


def _load(path: Path, recording: Path) -> dict:
    if not path.is_file():
        raise DataFormatError(
            f"{recording}: no sidecar {path.name} naming the audio of each stimulus; write {path} as "
            '{"stimuli": {"<annotation or event code>": "<audio file>"}} (format: replay/mne_dataset.py)'
        )
    try:
        size = path.stat().st_size
        if size > MAX_SIDECAR_BYTES:
            raise DataFormatError(f"{path}: {size} bytes, more than a sidecar's {MAX_SIDECAR_BYTES}; it "
                                  f"should only map stimuli to audio files, e.g. {EXAMPLE}")
        content = read_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        reason = " ".join(str(error).split())[:120]
        raise DataFormatError(f"{path}: not readable JSON ({reason}); fix the sidecar, e.g. "
                              f"{EXAMPLE}") from None
    if not isinstance(content, dict):
        raise DataFormatError(f"{path}: the sidecar is {_kind(content)}, expected an object; write {EXAMPLE}")
    return content


def read_sidecar(path: Path, recording: Path) -> dict:
    """Read and check a sidecar; return its stimuli (key → audio Path), subject and audio delay.

    Parameters
    ----------
    path : Path
        The sidecar JSON file.
    recording : Path
        The recording (or BIDS root) it describes, named in the error when the sidecar is absent.

    Returns
    -------
    dict
        ``{"stimuli": {str: Path}, "subject": str or None, "audio_delay_s": float (s)}``.

    Raises
    ------
    DataFormatError
        One line naming the key, the value found and the fix.
    """
    path = Path(path)
    content = _load(path, Path(recording))
    unknown = sorted(set(content) - set(KEYS))
    if unknown:
        logger.warning("%s: unknown keys %s ignored (known: %s)", path, _shown(unknown), ", ".join(KEYS))
    stimuli = content.get("stimuli")
    if stimuli is None:
        raise DataFormatError(f'{path}: no "stimuli" mapping; add {EXAMPLE}')
    if not isinstance(stimuli, dict) or not stimuli:
        raise DataFormatError(f'{path}: "stimuli" is {_shown(stimuli)} ({_kind(stimuli)}), expected a '
                              f"non-empty object from annotation to audio file; write {EXAMPLE}")
    for key in stimuli:
        if not key.strip() or not key.isprintable():
            raise DataFormatError(f"{path}: stimuli key {_shown(key)} is not an annotation name; use the "
                                  "annotation's description (BIDS: trial_type) or event code as the key")
    return {
        "stimuli": {key: _audio_path(path, key, value) for key, value in stimuli.items()},
        "subject": _subject(path, content.get("subject")),
        "audio_delay_s": _audio_delay(path, content.get("audio_delay_s")),
    }
