"""Training-time augmentation of EEG windows: time shift, channel dropout, amplitude scaling.

Applied to each training batch by the regression loop (never to validation or test windows), switched
by :class:`~offline_training.train.TrainConfig` ``augment`` (``eegmusic train --augment``), a spec
string such as ``"shift=2,dropout=0.1,scale=0.2"``:

- ``shift=S``: each window's EEG moves by a random whole number of samples in [-S, S] against its mel
  target (edges repeat the first or last sample); a jitter smaller than one mel frame (23 ms) asks the
  decoder not to rely on an exact latency, which differs between listeners;
- ``dropout=P``: each channel of each window is zeroed with probability P (a bad electrode) after
  the rest are rescaled by 1 / (1 - P);
- ``scale=SD``: each window is multiplied by ``exp(N(0, SD))`` (listeners and sessions differ in
  amplitude).

The augmentations are plain tensor operations on a batch (batch, n_chans, n_times) in µV, on the
batch's device, drawn from a seeded ``torch.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass

from eegmusic.stream.errors import ConfigError

KEYS = {"shift": int, "dropout": float, "scale": float}
"""Names of a spec's entries and their types."""


@dataclass(frozen=True)
class Augmentation:
    """What to do to each training window.

    Attributes
    ----------
    shift : int
        Largest time shift in samples (0: none).
    dropout : float
        Probability of zeroing each channel, in [0, 1).
    scale : float
        SD of the log amplitude factor (0: none).
    """

    shift: int = 0
    dropout: float = 0.0
    scale: float = 0.0

    @property
    def active(self) -> bool:
        """True when anything is changed."""
        return self.shift > 0 or self.dropout > 0 or self.scale > 0

    def __call__(self, eeg, generator=None):
        """Augmented copy of a batch.

        Parameters
        ----------
        eeg : Tensor, shape (batch, n_chans, n_times)
        generator : torch.Generator, optional
            Source of the random draws (on the CPU; the draws are moved to ``eeg``'s device).

        Returns
        -------
        Tensor, shape (batch, n_chans, n_times)
        """
        import torch

        batch, n_chans, n_times = eeg.shape
        if self.shift > 0:
            shifts = torch.randint(-self.shift, self.shift + 1, (batch, 1, 1), generator=generator)
            index = (torch.arange(n_times)[None, None, :] + shifts).clamp(0, n_times - 1)
            eeg = torch.gather(eeg, 2, index.expand(batch, n_chans, n_times).to(eeg.device))
        if self.dropout > 0:
            keep = (torch.rand((batch, n_chans, 1), generator=generator) >= self.dropout).to(eeg.dtype)
            eeg = eeg * keep.to(eeg.device) / (1.0 - self.dropout)
        if self.scale > 0:
            gain = torch.exp(self.scale * torch.randn((batch, 1, 1), generator=generator)).to(eeg.dtype)
            eeg = eeg * gain.to(eeg.device)
        return eeg


def parse_augment(spec: str | None) -> Augmentation:
    """An :class:`Augmentation` from a spec string (``""`` or None: no augmentation).

    Parameters
    ----------
    spec : str or None
        Comma-separated ``name=value`` entries, names from :data:`KEYS`, e.g. ``"shift=2,dropout=0.1"``.

    Raises
    ------
    ConfigError
        Unknown name, a name given twice, a value that is not a number, or out of range (the message
        names the fix).
    """
    if not spec:
        return Augmentation()
    values: dict = {}
    for entry in str(spec).split(","):
        name, _, text = entry.strip().partition("=")
        if name not in KEYS or not text:
            raise ConfigError(f"--augment entry {entry.strip()!r} is not name=value with a name of "
                              f"{', '.join(KEYS)}; write e.g. 'shift=2,dropout=0.1,scale=0.2'")
        if name in values:  # the later value silently won: say which of the two was meant
            raise ConfigError(f"--augment gives {name} twice in {spec!r}; give each name once, e.g. "
                              f"'{name}={text}'")
        try:
            values[name] = KEYS[name](text)
        except ValueError:
            kind, example = ("an integer", "2") if KEYS[name] is int else ("a number", "0.1")
            raise ConfigError(f"--augment {name}={text!r} is not {kind}; "
                              f"write e.g. '{name}={example}'") from None
    augmentation = Augmentation(**values)
    if not 0 <= augmentation.shift <= 25:
        raise ConfigError(f"--augment shift={augmentation.shift} must be 0-25 samples (0-200 ms); "
                          "use e.g. shift=2")
    if not 0.0 <= augmentation.dropout < 1.0:
        raise ConfigError(f"--augment dropout={augmentation.dropout} must be in [0, 1); use e.g. dropout=0.1")
    if not 0.0 <= augmentation.scale <= 2.0:
        raise ConfigError(f"--augment scale={augmentation.scale} must be 0-2 (SD of the log gain); use e.g. "
                          "scale=0.2")
    return augmentation
