"""The summary's whole-run figures are read at one moment, while the output thread goes on scoring hops.

Read one by one, a hop scored between two reads landed in some figures only: a running decode's summary said
the run's total was -0.00653 and its one song's total -0.00610, over the same count of frames
(``test_pipeline.py::test_end_to_end_sound_lsl_recording_truth`` failed on it).
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
from eegmusic.decoder.melspec import FRAME_PERIOD_S, mel_db
from eegmusic.decoder.truth import LiveTruth

from tests.decoder.test_truth_baselines import Stimuli


def test_the_run_and_its_one_song_agree_in_every_read_while_hops_are_scored(rng):
    stimuli = Stimuli(rng)
    truth = LiveTruth(stimuli)
    truth.load(21)
    mel = mel_db(stimuli.audio[21])
    decoded = mel + rng.normal(0.0, 10.0, mel.shape).astype(np.float32)   # every hop moves the r
    n = mel.shape[1]
    stop = threading.Event()

    def output_thread():    # the song played again and again, a frame a hop, each play placed by its marker
        start = 100.0
        while not stop.is_set():
            truth.marker("song=21;t=0.000", start)
            for k in range(n - 1):
                truth.update(decoded[:, k:k + 1], np.array([start + k * FRAME_PERIOD_S]), np.array([43]))
            start += n * FRAME_PERIOD_S

    thread = threading.Thread(target=output_thread, daemon=True)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)     # the threads take turns often: a hop lands inside a read unless it waits
    thread.start()
    try:
        for read in range(300):
            run = truth.whole_run()
            song = run["scores_by_song"][21] if run["scored_frames"] else None
            if song is not None:
                assert song["scored_frames"] == run["scored_frames"]
                assert song["dynamic_r_total"] == run["dynamic_r_total"], read
                assert song["shifted_stimulus_dynamic_r_total"] == run["shifted_stimulus_dynamic_r_total"]
            time.sleep(0)    # the output thread goes on: a reader that never lets go of the lock starves it
    finally:
        stop.set()
        thread.join(timeout=10)
        sys.setswitchinterval(switch)
    assert truth.scored_frames > n     # the reads overlapped a whole play of the song and more
