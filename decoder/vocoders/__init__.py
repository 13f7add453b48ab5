"""Streaming vocoders by name: each is one module here plus one :func:`register` line below.

A vocoder turns one frame's linear STFT magnitude into the next 512 samples (the
:class:`PhaseReconstruction` protocol); :class:`decoder.vocoder.StreamingVocoder` wraps it with
the mel → magnitude step, bad-frame handling, latency bookkeeping and gap fades, and ``decode``,
``gui``, ``vocode`` and the benchmark offer every registered name.

Adding one: write ``decoder/vocoders/mine.py`` with a class that has ``lookahead``, ``push``,
``drain`` and ``reset``, then add ``register(VocoderSpec("mine", "eegmusic.decoder.vocoders.mine:Mine",
lookaheads=(…), …))`` here. The class is named by its import path and imported on first use, so
the command line lists the names without loading numba. A class that also takes
``synthesis="early"`` (:class:`decoder.vocoders.framing.OverlapAdd` does both windows) declares
``syntheses=("hann", "early")`` and plays a frame sooner.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np


class PhaseReconstruction(Protocol):
    """One streaming vocoder: magnitude frames in, 512 samples out per frame."""

    lookahead: int
    """Frames it waits for: ``push`` returns None for the first ``lookahead`` frames after a reset,
    and the samples of push k belong to frame ``k - lookahead - 2`` (two frames are inherent to
    overlap-adding 2048-sample windows at hop 512), or ``k - lookahead - 1`` when built with the
    ``"early"`` synthesis window (:mod:`decoder.vocoders.framing`)."""

    def push(self, magnitude: np.ndarray) -> np.ndarray | None:
        """Take a frame's magnitude, shape (1025,); return 512 float64 samples or None while filling."""
        ...

    def drain(self) -> list[np.ndarray]:
        """The samples still held (frames in the look-ahead, then the overlap-add tail), 512 each."""
        ...

    def reset(self) -> None:
        """Forget all state (a gap in the frames)."""
        ...


@dataclass(frozen=True)
class VocoderSpec:
    """A registered vocoder.

    Attributes
    ----------
    name : str
        What ``--vocoder`` takes.
    factory : str or callable
        ``factory(lookahead, **options)`` builds a :class:`PhaseReconstruction`; a string
        ``"package.module:Class"`` is imported on first use (:meth:`build`).
    lookaheads : tuple of int
        The look-aheads (frames) it supports.
    default_lookahead : int
    summary : str
        One line for ``--help``.
    syntheses : tuple of str
        The synthesis windows it can play with (:data:`decoder.vocoders.framing.SYNTHESES`); a class
        offering more than ``"hann"`` takes a ``synthesis`` keyword.
    """

    name: str
    factory: str | Callable[..., PhaseReconstruction]
    lookaheads: tuple[int, ...]
    default_lookahead: int
    summary: str
    syntheses: tuple[str, ...] = ("hann",)

    def build(self, lookahead: int, synthesis: str = "hann", **options) -> PhaseReconstruction:
        """A new instance with this look-ahead, synthesis window (one of :attr:`syntheses`) and options."""
        factory = self.factory
        if isinstance(factory, str):
            module, _, name = factory.partition(":")
            factory = getattr(importlib.import_module(module), name)
        if self.syntheses != ("hann",):
            options["synthesis"] = synthesis
        return factory(lookahead, **options)


VOCODERS: dict[str, VocoderSpec] = {}


def register(spec: VocoderSpec) -> None:
    """Make a vocoder available by name (a name registered twice is a programming error)."""
    if spec.name in VOCODERS:
        raise ValueError(f"vocoder {spec.name!r} is registered twice")
    if spec.default_lookahead not in spec.lookaheads:
        raise ValueError(f"vocoder {spec.name!r}: default look-ahead not among {spec.lookaheads}")
    VOCODERS[spec.name] = spec


_BOTH = ("hann", "early")
register(VocoderSpec("rtisi", "eegmusic.decoder.vocoders.rtisi:RTISI", (0, 1, 2), 1,
                     "RTPGHI refined by fast Griffin-Lim over a sliding block", _BOTH))
register(VocoderSpec("rtpghi", "eegmusic.decoder.vocoders.rtpghi:RTPGHI", (0, 1), 1,
                     "phase-gradient heap integration alone (fastest)", _BOTH))
register(VocoderSpec("griffinlim", "eegmusic.decoder.vocoders.griffinlim:GriffinLim", tuple(range(17)), 3,
                     "streaming fast Griffin-Lim from a phase-advance guess (baseline)", _BOTH))

DEFAULT_VOCODER = "rtisi"
"""The vocoder ``decode`` and ``gui`` use unless ``--vocoder`` says otherwise."""


def vocoder_help() -> str:
    """Help text of a ``--vocoder`` option: every registered name with its one line."""
    names = "; ".join(f"{spec.name}: {spec.summary}" for spec in VOCODERS.values())
    return f"streaming vocoder (default {DEFAULT_VOCODER}). {names}"
