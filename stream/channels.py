"""Map a stream's channels onto the model's channel list by label, interpolating missing ones.

A stream's labels are matched to the model's case-insensitively and through the standard aliases
(``E129``/``Cz`` on a 128/129 net, ``T3``/``T7``, ``T4``/``T8``, ``T5``/``P7``, ``T6``/``P8``; see
:func:`stream.montage.label_keys`). Stream channels the model does not use (face electrodes
E125-E128, triggers, a sample-index channel) are ignored, except as sources of interpolation.

A model channel the stream lacks is an error naming it, or, with ``impute_missing``, is filled by
spherical-spline interpolation (:mod:`stream.interpolation`) from every stream channel with a known
position: the stream's own (LSL ``location``), else the model's position for the same label, else a
standard montage's. The interpolation is one precomputed matrix, applied as one matrix product per
chunk. A model states how many missing channels it tolerates (``max_missing``); beyond that the
stream is refused, even with ``impute_missing``.

The vertex reference Cz (E129) of a GSN-HydroCel net is the exception: amplifiers referenced to it
do not send it, and its value in the recording's own reference is zero, which is what it gets here.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import numpy as np
from eegmusic.stream.errors import StreamError
from eegmusic.stream.interpolation import spline_matrix
from eegmusic.stream.montage import E129_IS_CZ_TOP, gsn_top_number, head_positions, label_key, label_keys
from eegmusic.stream.spec import MODEL_CHANNELS

IMPUTE_ADVICE = "pass --impute-missing to interpolate them"
"""The advice of every refusal of a stream that lacks model channels (the dashboard recognises it by
this text and adds where the option goes)."""

logger = logging.getLogger(__name__)

REFERENCE_LABEL = "Cz"
"""The GSN-HydroCel vertex reference (E129): zero when a stream referenced to it omits it."""

_GSN_LABEL = re.compile(r"^E\d+$", re.IGNORECASE)


def is_gsn_net(labels) -> bool:
    """Whether at least half of a stream's labels are GSN electrode numbers (``E1``, ``e57``, …).

    Such a stream comes from an EGI amplifier, whose reference ``Cz`` (E129) is zero in its own
    reference when it is not sent. The model check (``decoder.modelfile.check_stream``) and the channel
    map read it through this one test, so a stream the check passes is one the map accepts.
    """
    labels = [str(label).strip() for label in labels]
    return sum(bool(_GSN_LABEL.match(label)) for label in labels) >= len(labels) // 2 > 0


def other_gsn_net(stream_labels, model_labels) -> str | None:
    """Why a GSN stream is another net than the one a GSN model was trained on, or None.

    Electrode numbers name other places on the 128/129 and the 256/257 nets (same-numbered electrodes
    lie a median 10 cm apart, and only the first's E129 is the reference Cz), so matching such a stream
    by label would feed every model channel from the wrong place; interpolation cannot help, since the
    labels do match. A label numbered above E129 makes a list the larger net. The model check
    (``decoder.modelfile.check_stream``) and the channel map refuse through this one test.

    Returns
    -------
    reason : str or None
        ``"is a GSN net of 257 channels (…), not the 129-electrode net …: use a model trained on this
        net …"``, to follow the stream's name.
    """
    if not is_gsn_net(stream_labels) or not is_gsn_net(model_labels):
        return None
    top, model_top = gsn_top_number(stream_labels), gsn_top_number(model_labels)
    if (top > E129_IS_CZ_TOP) == (model_top > E129_IS_CZ_TOP):
        return None
    model_net = "256/257-electrode" if model_top > E129_IS_CZ_TOP else "129-electrode"
    return (f"is a GSN net of {len(stream_labels)} channels (labels up to E{top}), not the {model_net} "
            "net the model was trained on, whose electrode numbers name other places (a median 10 cm "
            "apart): use a model trained on this net (eegmusic train on its recordings)")


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
        Stream channel index for each model channel, or -1 when it is interpolated or zero.
    zeroed : tuple of int
        Model channel indices filled with zeros (a reference the stream omits).
    interpolated : tuple of int
        Model channel indices filled by spherical-spline interpolation.
    interpolate_from : ndarray of int, shape (n_from,)
        Stream channel indices the interpolation reads.
    weights : ndarray, shape (n_interpolated, n_from), float64
        ``out[interpolated] = weights @ eeg[interpolate_from]``.
    """

    stream_labels: tuple[str, ...]
    model_labels: tuple[str, ...]
    source: np.ndarray
    zeroed: tuple[int, ...] = ()
    interpolated: tuple[int, ...] = ()
    interpolate_from: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    weights: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    @property
    def interpolated_labels(self) -> tuple[str, ...]:
        """Labels of the model channels filled by interpolation, in model order."""
        return tuple(self.model_labels[row] for row in self.interpolated)

    @property
    def is_identity(self) -> bool:
        """True when the output is the input unchanged (same labels, same order)."""
        return (
            len(self.stream_labels) == len(self.model_labels)
            and not self.interpolated and not self.zeroed
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
        if self.interpolated:
            out[list(self.interpolated)] = self.weights @ eeg[self.interpolate_from]
        return out


def duplicate_label(labels) -> str | None:
    """The first label of ``labels`` that appears twice, compared as :func:`channel_map` compares labels
    (:func:`label_keys`), in words ("channel label 'Cz' twice (channels 2 and 3)"); None if none does.
    ``eegmusic info`` lists it as a problem of a recording that ``train`` would refuse."""
    labels = tuple(str(label) for label in labels)
    seen: dict[str, int] = {}
    for index, key in enumerate(label_keys(labels)):
        if key in seen:
            return f"channel label {labels[index]!r} twice (channels {seen[key] + 1} and {index + 1})"
        seen[key] = index
    return None


def channel_map(stream_labels, model_labels=MODEL_CHANNELS, *, impute_missing: bool = False,
                stream_name: str = "the stream", stream_positions=None, model_positions=None,
                max_missing: int | None = None) -> ChannelMap:
    """Match a stream's labels to the model's.

    Parameters
    ----------
    stream_labels : sequence of str
        The stream's channel labels in stream order.
    model_labels : sequence of str
        The model's channel labels in model order.
    impute_missing : bool
        Fill model channels the stream lacks by spherical-spline interpolation instead of raising.
    stream_name : str
        Used in error messages.
    stream_positions : ndarray, shape (n_stream, 3), optional
        The stream's electrode positions in metres, head frame (NaN rows where unknown).
    model_positions : ndarray, shape (n_model, 3), optional
        The model's electrode positions in metres, head frame (looked up by label when not given).
    max_missing : int, optional
        Most model channels that may be missing (interpolated); None for no limit.

    Returns
    -------
    ChannelMap

    Raises
    ------
    StreamError
        Duplicate stream labels; model channels missing (without ``impute_missing``, or more than
        ``max_missing``); no electrode positions to interpolate from.
    """
    stream_labels = tuple(str(label) for label in stream_labels)
    model_labels = tuple(model_labels)
    other_net = other_gsn_net(stream_labels, model_labels)
    if other_net:
        raise StreamError(f"{stream_name} {other_net}")
    twice = duplicate_label(stream_labels)
    if twice:
        raise StreamError(f"{stream_name} has {twice}; fix the amplifier's channel labels")
    seen = {key: index for index, key in enumerate(label_keys(stream_labels))}
    source = np.full(len(model_labels), -1, dtype=np.int64)
    missing: list[int] = []
    zeroed: list[int] = []
    is_gsn = is_gsn_net(stream_labels)
    for row, key in enumerate(label_keys(model_labels)):
        index = seen.get(key)
        if index is not None:
            source[row] = index
        elif key == label_key(REFERENCE_LABEL) and is_gsn:
            zeroed.append(row)
        else:
            missing.append(row)
    if zeroed:
        logger.info("%s does not send the reference %s; it is zero in the recording reference",
                    stream_name, REFERENCE_LABEL)
    if not missing:
        return ChannelMap(stream_labels, model_labels, source, tuple(zeroed))
    names = [model_labels[row] for row in missing]
    if max_missing is not None and len(missing) > max_missing:
        raise StreamError(
            f"{stream_name} has {len(stream_labels)} channels and lacks {len(names)} the model needs "
            f"({_summarise(names)}); the model tolerates at most {max_missing} missing: send those "
            "channels or use a model trained on this montage"
        )
    if not impute_missing:
        raise StreamError(
            f"{stream_name} has {len(stream_labels)} channels and lacks {len(names)} the model needs "
            f"({_summarise(names)}); {IMPUTE_ADVICE}, or use a model "
            "trained on this montage"
        )
    sources, weights = _interpolation(missing, model_labels, source, stream_labels, stream_positions,
                                      model_positions, stream_name)
    logger.warning("%s: interpolating %d missing channels from %d: %s", stream_name, len(missing),
                   sources.size, _summarise(names))
    return ChannelMap(stream_labels, model_labels, source, tuple(zeroed), tuple(missing), sources, weights)


def _interpolation(missing, model_labels, source, stream_labels, stream_positions, model_positions,
                   stream_name) -> tuple[np.ndarray, np.ndarray]:
    """Stream channels to interpolate from and the spline weights for each missing model channel."""
    n_stream = len(stream_labels)
    if model_positions is None:
        model_positions = head_positions([model_labels[row] for row in missing], strict=False)
        model_positions = _scatter(missing, model_positions, len(model_labels))
    model_positions = np.asarray(model_positions, dtype=np.float64)
    unplaced = [model_labels[row] for row in missing if not np.all(np.isfinite(model_positions[row]))]
    if unplaced:
        raise StreamError(f"cannot interpolate {_summarise(unplaced)} for {stream_name}: the model gives "
                          "no electrode positions for them; send those channels")
    positions = (np.full((n_stream, 3), np.nan) if stream_positions is None
                 else np.array(stream_positions, dtype=np.float64).reshape(n_stream, 3))
    for row, index in enumerate(source):  # the model's position of a channel the stream shares
        if index >= 0 and not np.all(np.isfinite(positions[index])):
            positions[index] = model_positions[row] if np.all(np.isfinite(model_positions[row])) else np.nan
    todo = [i for i in range(n_stream) if not np.all(np.isfinite(positions[i]))]
    if todo:
        positions[todo] = head_positions([stream_labels[i] for i in todo], strict=False)
    placed = np.flatnonzero(np.all(np.isfinite(positions), axis=1))
    if placed.size == 0:
        raise StreamError(f"{stream_name}: channel labels {_summarise(stream_labels)} match no montage and "
                          "carry no positions, so nothing can be interpolated; send "
                          "desc/channels/channel/location or use 10-20/10-05 labels")
    ignored = [stream_labels[i] for i in range(n_stream) if i not in set(placed.tolist())]
    if ignored:
        logger.info("%s: channels without a position are not used to interpolate: %s", stream_name,
                    _summarise(ignored))
    weights = spline_matrix(positions[placed], model_positions[missing])
    return placed.astype(np.int64), weights


def _scatter(rows, values: np.ndarray, n_rows: int) -> np.ndarray:
    out = np.full((n_rows, values.shape[1]), np.nan)
    out[rows] = values
    return out
