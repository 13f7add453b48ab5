"""Map a stream's channels onto the model's channel list by label.

A stream's labels are matched to the model's (``E129`` and ``Cz`` name the same electrode). Stream
channels the model does not use (face electrodes E125-E128, triggers, a sample-index channel) are
ignored. A model channel the stream lacks is an error naming it, or, with ``impute_missing``, the
mean of its neighbouring electrodes by position, as NMED-T's own imputation does. The vertex
reference Cz (E129) of a GSN-HydroCel net is the exception: amplifiers referenced to it do not send
it, and its value in the recording's own reference is zero, which is what it gets here.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np
from eegmusic.stream.errors import StreamError
from eegmusic.stream.montage import canonical_label, electrode_positions
from eegmusic.stream.spec import MODEL_CHANNELS

logger = logging.getLogger(__name__)

REFERENCE_LABEL = "Cz"
"""The GSN-HydroCel vertex reference (E129): zero when a stream referenced to it omits it."""

IMPUTE_RADIUS_M = 0.045
"""Neighbourhood radius in metres for imputing a missing electrode (GSN spacing is about 3 cm)."""

_GSN_LABEL = re.compile(r"^E\d+$")


def default_labels(n_chans: int) -> tuple[str, ...] | None:
    """Labels to assume for a stream that sends none, or None when its count is not a known net.

    125 channels are taken to be in model order (E1…E124, Cz), 128 to be E1…E128 and 129 to be
    E1…E129.
    """
    if n_chans == len(MODEL_CHANNELS):
        return MODEL_CHANNELS
    if n_chans in (128, 129):
        return tuple(f"E{i}" for i in range(1, n_chans + 1))
    return None


def _summarise(labels) -> str:
    labels = list(labels)
    return ", ".join(labels) if len(labels) <= 8 else ", ".join(labels[:6]) + f", … ({len(labels)} in all)"


@dataclass(frozen=True, eq=False)
class ChannelMap:
    """How to build the model's channels from a stream's channels.

    Attributes
    ----------
    stream_labels : tuple of str
        The stream's labels, in stream order.
    model_labels : tuple of str
        The model's labels, in model order (the output order).
    source : ndarray of int, shape (n_model,)
        Stream channel index for each model channel, or -1 when it is imputed or zero.
    imputed : dict of int to ndarray of int
        Model channel index → stream channel indices whose mean fills it.
    zeroed : tuple of int
        Model channel indices filled with zeros (a reference the stream omits).
    """

    stream_labels: tuple[str, ...]
    model_labels: tuple[str, ...]
    source: np.ndarray
    imputed: dict
    zeroed: tuple[int, ...]

    @property
    def is_identity(self) -> bool:
        """True when the output is the input unchanged (same labels, same order)."""
        return (
            len(self.stream_labels) == len(self.model_labels)
            and not self.imputed and not self.zeroed
            and bool(np.all(self.source == np.arange(len(self.model_labels))))
        )

    def apply(self, eeg: np.ndarray) -> np.ndarray:
        """Return the model's channels.

        Parameters
        ----------
        eeg : ndarray, shape (n_stream_chans, n_times)

        Returns
        -------
        eeg : ndarray, shape (n_model_chans, n_times)
            A new array of ``eeg``'s dtype (the input itself when the map is the identity).
        """
        if self.is_identity:
            return eeg
        out = np.zeros((len(self.model_labels), eeg.shape[1]), dtype=eeg.dtype)
        present = self.source >= 0
        out[present] = eeg[self.source[present]]
        for row, sources in self.imputed.items():
            out[row] = eeg[sources].mean(axis=0)
        return out


def channel_map(stream_labels, model_labels=MODEL_CHANNELS, *, impute_missing: bool = False,
                stream_name: str = "the stream") -> ChannelMap:
    """Match a stream's labels to the model's.

    Parameters
    ----------
    stream_labels : sequence of str
        The stream's channel labels in stream order.
    model_labels : sequence of str
        The model's channel labels in model order.
    impute_missing : bool
        Fill model channels the stream lacks from neighbouring electrodes instead of raising.
    stream_name : str
        Used in error messages.

    Returns
    -------
    ChannelMap

    Raises
    ------
    StreamError
        Duplicate stream labels, or model channels missing (without ``impute_missing``), or missing
        channels that have no neighbour in the stream to impute from.
    """
    stream_labels = tuple(str(label) for label in stream_labels)
    model_labels = tuple(model_labels)
    canonical = [canonical_label(label) for label in stream_labels]
    seen: dict[str, int] = {}
    for index, label in enumerate(canonical):
        if label in seen:
            raise StreamError(
                f"{stream_name} has channel label {stream_labels[index]!r} twice (channels {seen[label] + 1} "
                f"and {index + 1}); fix the amplifier's channel labels"
            )
        seen[label] = index
    source = np.full(len(model_labels), -1, dtype=np.int64)
    missing: list[int] = []
    zeroed: list[int] = []
    is_gsn = sum(bool(_GSN_LABEL.match(label)) for label in canonical) >= len(canonical) // 2 > 0
    for row, label in enumerate(model_labels):
        index = seen.get(canonical_label(label))
        if index is not None:
            source[row] = index
        elif canonical_label(label) == REFERENCE_LABEL and is_gsn:
            zeroed.append(row)
        else:
            missing.append(row)
    if zeroed:
        logger.info("%s does not send the reference %s; it is zero in the recording reference",
                    stream_name, REFERENCE_LABEL)
    imputed: dict[int, np.ndarray] = {}
    if missing and not impute_missing:
        names = [model_labels[row] for row in missing]
        raise StreamError(
            f"{stream_name} has {len(stream_labels)} channels and lacks {len(names)} the model needs "
            f"({_summarise(names)}); pass --impute-missing to fill them from neighbours, or use a model "
            "trained on this montage"
        )
    if missing:
        imputed = _impute_sources(missing, model_labels, canonical, stream_name)
        logger.warning("%s: imputing %d missing channels from neighbours: %s", stream_name, len(missing),
                       _summarise(model_labels[row] for row in missing))
    return ChannelMap(stream_labels, model_labels, source, imputed, tuple(zeroed))


def _impute_sources(missing, model_labels, canonical, stream_name) -> dict[int, np.ndarray]:
    """Neighbouring stream channels (by electrode position) for each missing model channel."""
    known = [index for index, label in enumerate(canonical) if _has_position(label)]
    unknown_model = [model_labels[row] for row in missing
                     if not _has_position(canonical_label(model_labels[row]))]
    if unknown_model or not known:
        raise StreamError(
            f"cannot impute {_summarise(unknown_model or [model_labels[r] for r in missing])} for "
            f"{stream_name}: no electrode positions to impute from; send those channels"
        )
    known_pos = electrode_positions([canonical[index] for index in known])
    out: dict[int, np.ndarray] = {}
    for row in missing:
        pos = electrode_positions([canonical_label(model_labels[row])])[0]
        dist = np.linalg.norm(known_pos - pos, axis=1)
        near = np.flatnonzero(dist < IMPUTE_RADIUS_M)
        if near.size == 0:  # sparse montage: the three nearest electrodes
            near = np.argsort(dist)[:3]
        out[row] = np.asarray([known[i] for i in near], dtype=np.int64)
    return out


def _has_position(label: str) -> bool:
    try:
        electrode_positions([label])
    except KeyError:
        return False
    return True
