"""One song of one listener from a dataset, replayed as a live EEG stream with its stimulus markers.

:class:`Player` reads one song and one participant of an NMED-T folder (real or simulated), or of any
dataset :func:`replay.dataset.open_dataset` opens, and plays it through
:class:`replay.player.ArrayPlayer` (paced by the LSL clock), with a marker outlet that tells clients
where the stimulus is (:func:`song_markers`), optionally presented as a 128-channel amplifier at a
higher rate (:func:`replay.device_like.device_like_eeg`).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
from eegmusic.replay.device_like import device_like_eeg
from eegmusic.replay.player import ArrayPlayer, check_speed
from eegmusic.stream.errors import ConfigError, utf8

logger = logging.getLogger(__name__)


def song_markers(song_id: int, duration_s: float) -> list[tuple[float, str]]:
    """Marker strings of one pass through a song, with their stimulus times.

    Parameters
    ----------
    song_id : int
        The song's trigger code (21..30).
    duration_s : float
        Length of the recording in seconds.

    Returns
    -------
    markers : list of (time_s, text)
        ``song_start`` at 0, ``song=NN;t=S.000`` at every whole second S < duration, ``song_end``
        at ``duration_s``, in time order.
    """
    markers = [(0.0, f"song_start={song_id}")]
    markers += [(float(s), f"song={song_id};t={s:.3f}") for s in range(math.ceil(duration_s))]
    markers.append((float(duration_s), f"song_end={song_id}"))
    return markers


class Player(ArrayPlayer):
    """Replay one song and one participant of an NMED-T folder as a live EEG stream.

    Parameters
    ----------
    data_dir : str, Path or dataset
        An NMED-T folder (``songNN_Imputed.mat`` files), real or simulated, or any dataset opened by
        :func:`replay.dataset.open_dataset` (XDF session, MNE recording, BIDS root).
    song : int
        Song trigger code (21..30) present in the folder.
    subject : int
        1-based participant index within the song's file.
    speed, loop, chunk_ms, index_channel
        As in :class:`ArrayPlayer`.
    name : str or None
        Stream name; default ``eegmusic-replay-s{song}-p{subject}``.
    source_id : str or None
        Default ``<name>@<host>``.
    device_like : float or None
        Present the data as a 128-channel amplifier at this rate (:func:`device_like_eeg`).
    markers : bool
        Send the marker outlet ``<name>-markers``.
    wait_for_consumer_s, check_clash
        As in :class:`ArrayPlayer`.
    progress : bool
        Show a progress bar (stderr) while preparing device-like data.

    Raises
    ------
    ConfigError
        Unknown song or subject (the message lists what exists), speed <= 0.
    DataFormatError
        Missing or corrupt folder or file.
    """

    def __init__(
        self,
        data_dir: str | Path,
        song: int,
        subject: int,
        *,
        speed: float = 1.0,
        loop: bool = False,
        name: str | None = None,
        source_id: str | None = None,
        chunk_ms: float = 10.0,
        device_like: float | None = None,
        index_channel: bool = False,
        markers: bool = True,
        wait_for_consumer_s: float = 0.0,
        check_clash: bool = True,
        progress: bool = False,
    ) -> None:
        from eegmusic.replay.nmedt import NMEDTFolder

        speed = check_speed(speed)
        # an opened dataset (replay.dataset.open_dataset: XDF session, MNE recording, ...) or an NMED-T path
        folder = data_dir if hasattr(data_dir, "load_song") else NMEDTFolder(data_dir)
        data_dir = folder.path
        if device_like is not None and folder.kind != "NMED-T folder":
            article = "an" if folder.kind.startswith(("XDF", "MNE")) else "a"  # by sound: "an XDF session"
            raise ConfigError(f"--device-like imitates NMED-T's 128-channel amplifier; {data_dir} is "
                              f"{article} {folder.kind}: drop --device-like")
        song_ids = sorted(folder.song_ids)
        if song not in song_ids:
            raise ConfigError(
                f"song {song} not in {data_dir} (has {', '.join(map(str, song_ids))}); pass one of those"
            )
        recording = folder.load_song(song)
        n_subjects = len(recording.subjects)
        if not 1 <= subject <= n_subjects:
            raise ConfigError(
                f"subject {subject} not in song {song} of {data_dir} (has 1..{n_subjects}, ids "
                f"{', '.join(map(str, recording.subjects))}); pass a 1-based index in that range"
            )
        eeg = np.array(recording.eeg(subject - 1))  # a copy, so the other participants can be freed
        sfreq = float(recording.sfreq)
        labels = tuple(recording.channels)
        info, subject_id, source_sfreq = recording.info, recording.subjects[subject - 1], recording.sfreq
        del recording
        duration_s = eeg.shape[1] / sfreq
        if device_like is not None:
            eeg, labels = device_like_eeg(eeg, sfreq, device_like, labels, progress=progress)
            sfreq = float(device_like)
        self.song = int(song)
        self.subject = int(subject)
        name = name or f"eegmusic-replay-s{song}-p{subject}"
        dataset = {
            "name": "NMED-T" if folder.kind == "NMED-T folder" else folder.kind,
            "path": str(Path(data_dir).resolve()),
            "song": song,
            "title": info.title,
            "bpm": info.bpm,
            "subject": subject_id,
            "subject_index": subject,
            "source_sfreq": source_sfreq,
            "device_like": "no" if device_like is None else f"{float(device_like):g} Hz",
        }
        stimulus = folder.stimulus_path(song)
        named = None if stimulus is None else str(Path(stimulus).resolve())
        if named is not None and not utf8(named):
            logger.warning("%s is not UTF-8 text, so the stream cannot name it and decode --truth cannot "
                           "score this replay; rename it to score it", ascii(named))
            named = None
        if named is not None:   # what `decode --truth` scores against, for a dataset of any layout
            dataset["stimulus"] = named
            dataset["stimulus_start_s"] = float(folder.stimulus_start_s(song))
        super().__init__(
            eeg, sfreq, labels, name=name, source_id=source_id, speed=speed, loop=loop, chunk_ms=chunk_ms,
            index_channel=index_channel, markers=song_markers(song, duration_s) if markers else None,
            extra_desc={"dataset": dataset, "reference": "average (NMED-T preprocessing)"},
            wait_for_consumer_s=wait_for_consumer_s, check_clash=check_clash,
        )
