"""What a model expects of the stream: fixed input numbers and the preprocessing spec.

The numbers are fixed by the design contract (docs/design.md): models read 1-s windows of 125
channels at 125 Hz in NMED-T channel order. :class:`PreprocessingSpec` is stored in every model's
ONNX metadata and drives both the offline pipeline (training) and the streaming one (live), so that
the two produce the same samples.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

MODEL_SFREQ = 125.0
"""Model EEG rate in Hz (NMED-T preprocessed rate)."""

WINDOW_S = 1.0
"""Model window length in seconds."""

WINDOW_SAMPLES = 125
"""Model window length in samples at :data:`MODEL_SFREQ`."""

REFERENCES = ("none", "average")
"""Re-references :class:`PreprocessingSpec` knows (``reference``)."""

DEFAULT_HOP_S = 0.1
"""Default hop between successive windows in seconds."""

MODEL_CHANNELS: tuple[str, ...] = tuple(f"E{i}" for i in range(1, 125)) + ("Cz",)
"""The 125 model channels in NMED-T order: E1..E124, then Cz (E129, the reference)."""

N_CHANS = len(MODEL_CHANNELS)

MAX_ABS_UV = 1e6
"""Largest EEG magnitude in µV taken as a measurement (1 V). No scalp amplifier's input range comes near it
(DC-coupled ones span about ±0.4 V), so a larger finite value is a fault (a unit error, a bad cast or a broken
sender) and is treated like NaN: refused in recorded files, zeroed and flagged in a live stream."""

DEVICE_CHANNELS_128: tuple[str, ...] = tuple(f"E{i}" for i in range(1, 129))
"""Labels of a 128-channel GSN-HydroCel amplifier stream (Cz is its reference and not sent)."""

@dataclass(frozen=True)
class PreprocessingSpec:
    """How raw stream samples become model input; saved in the model's metadata.

    Parameters
    ----------
    sfreq : float
        Model rate in Hz after resampling.
    channels : tuple of str
        Model channel labels, in model order.
    reference : {"none", "average"}
        Re-reference applied after channel mapping. The default, ``"average"``, leaves NMED-T's
        average-referenced files as they are and brings a Cz-referenced amplifier (Cz = 0) to the same
        reference, so models trained on the files read live caps unchanged.
    highpass_hz : float or None
        Causal Butterworth high-pass cut-off in Hz (order 2), or None for none.
    notch_hz : float or None
        Causal notch frequency in Hz (quality 30), or None for none.
    """

    sfreq: float = MODEL_SFREQ
    channels: tuple[str, ...] = field(default=MODEL_CHANNELS)
    reference: str = "average"
    highpass_hz: float | None = None
    notch_hz: float | None = None

    def to_dict(self) -> dict:
        """Return a JSON-ready dict (round-trips through :meth:`from_dict`)."""
        out = asdict(self)
        out["channels"] = list(self.channels)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessingSpec:
        """Build a spec from :meth:`to_dict` output; unknown keys are ignored."""
        known = {k: data[k] for k in ("sfreq", "reference", "highpass_hz", "notch_hz") if k in data}
        channels = tuple(data.get("channels", MODEL_CHANNELS))
        return cls(channels=channels, **known)
