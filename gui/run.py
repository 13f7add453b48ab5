"""The dashboard on a decode built elsewhere, run until it ends: :func:`run_dashboard` (``eegmusic demo``).

``eegmusic gui`` builds its own window and event loop (:mod:`gui.cli_gui`); the demo instead builds
the decode (in-process, or a ``decode --publish`` process from :func:`gui.attach.spawn_decode`) and
hands it to :func:`run_dashboard`, which shows it in a :class:`gui.app.MainWindow` for a given time
and returns the decode's summary.
"""

from __future__ import annotations

from eegmusic.gui.app import DEFAULT_REFRESH_HZ, MainWindow, closed_by_signals, make_app
from PySide6 import QtCore


def run_dashboard(pipeline, *, seconds: float | None = None, refresh_hz: float = DEFAULT_REFRESH_HZ) -> dict:
    """Decode with a pipeline built elsewhere while the dashboard shows it; return its summary.

    Starts ``pipeline`` (not yet started) from the window, closes the window ``seconds`` after the
    pipeline has started (or when the user closes it), stops the pipeline and returns
    ``pipeline.summary()``.

    Parameters
    ----------
    pipeline : decoder.pipeline.LivePipeline or gui.attach.AttachedDecode
        In-process, or a decode process the window shows (``spawn_decode``) and stops at the end.
    seconds : float, optional
        Close after this long; None waits for the user.
    refresh_hz : float
        Snapshot polls per second (at most 30).

    Raises
    ------
    EEGMusicError
        When the pipeline cannot start (the one-line reason the window showed).
    """
    app = make_app()
    # a local event loop, ended by this window only: QApplication.quit() (also called when the last
    # window closes) would leave Qt's "quit now" flag set and stop every later event loop at once
    quit_on_close = app.quitOnLastWindowClosed()
    app.setQuitOnLastWindowClosed(False)
    loop = QtCore.QEventLoop()
    window = MainWindow(refresh_hz=refresh_hz)
    window.closed.connect(loop.quit)
    # connected before the start: a start that fails at once must still close the window
    window.start_failed.connect(window.close)  # the caller reports the reason
    if seconds is not None:  # counted from the start, as a headless run counts them
        window.started.connect(lambda: QtCore.QTimer.singleShot(int(seconds * 1000), window.close))
    window.show()
    window.run_pipeline(pipeline)
    try:
        with closed_by_signals(window):
            loop.exec()
    finally:
        app.setQuitOnLastWindowClosed(quit_on_close)
        window.shutdown()
    if window.start_error is not None:
        raise window.start_error
    return pipeline.summary()
