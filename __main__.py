"""``python -m eegmusic``: the same as the ``eegmusic`` command."""

import sys

from eegmusic.stream.cli import run

sys.exit(run())
