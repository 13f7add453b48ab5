"""eegmusic: live EEG to music you can hear.

One distribution, one import root. The five stages live in top-level folders of the repository and
are installed as subpackages of this root (``setup.py`` maps them):

- ``eegmusic.stream`` — LSL inlets and outlets, ring buffer, resampling, preprocessing, the CLI;
- ``eegmusic.decoder`` — ONNX runtime, frame clock, streaming vocoder, audio out, live decode;
- ``eegmusic.gui`` — the dashboard and the demo;
- ``eegmusic.offline_training`` — datasets, splits, torch models, training, evaluation, export;
- ``eegmusic.replay`` — dataset readers, the simulator and the live replayer;
- ``eegmusic.benchmarks`` — ``eegmusic bench`` (tools about the code, not part of the live path).

The design contract is ``docs/design.md`` in the repository.
"""

__version__ = "0.2.0"
