"""Hostile input to ``eegmusic simulate``: each case is refused in one line before anything is written.

Found by an exploratory run: a week-long request died in numpy with a traceback, ``--music`` inside
``--out --overwrite`` deleted the music before reading it, a bad music file left a half-made folder
that blocked the corrected rerun, ``--overwrite`` mixed two datasets or wrote into a training run,
and options that did not apply (``--music … --n-songs 3``, ``--montage … --raw``) were ignored.
"""

from __future__ import annotations

import errno
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.faults.conftest import assert_one_line_error

TINY = ["--n-subjects", "1", "--duration", "2", "--no-progress"]


def _snapshot(folder):
    """Every file under ``folder`` with its bytes (what must survive a refusal unchanged)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _wav(path, samples, subtype="PCM_16"):
    soundfile.write(path, np.asarray(samples, dtype=np.float32), 22050, subtype=subtype)
    return path


@pytest.fixture
def sim_copy(sim_dir, tmp_path):
    """A writable copy of the session's simulated NMED-T folder."""
    return shutil.copytree(sim_dir, tmp_path / "sim")


def test_a_run_larger_than_memory_is_refused_before_writing(tmp_path):
    """It died after minutes in numpy: 'Unable to allocate 99.4 GiB', with a traceback.

    Run in a child under a 3 GiB address-space limit and a time limit, so that a regression fails
    quickly (a MemoryError's traceback) instead of simulating a week of EEG.
    """
    import resource
    import subprocess
    import sys

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))

    out = tmp_path / "huge"
    result = subprocess.run(
        [sys.executable, "-m", "eegmusic", "simulate", "--out", str(out), "--n-songs", "10", "--n-subjects",
         "200", "--duration", "3000", "--no-progress"],
        capture_output=True, text=True, timeout=120, preexec_fn=limit_memory)
    assert_one_line_error(result.returncode, result.stderr, "of memory", "available", "--n-subjects")
    assert not out.exists()


def test_a_run_larger_than_the_disk_is_refused_before_writing(cli, small_disk):
    out = small_disk / "sim"
    status, _, err = cli("simulate", "--out", out, "--n-songs", "1", *TINY)
    line = assert_one_line_error(status, err, "free on the disk", "--n-subjects")
    assert "0.0 GiB" not in line and "KiB" in line  # a 256 KiB disk, in units that show it
    assert not out.exists()


@pytest.mark.parametrize("music", ["stimuli", "stimuli/song21.wav"])
def test_music_inside_out_is_refused_and_kept(music, sim_copy, cli):
    """``--music simA/stimuli --out simA --overwrite`` deleted the wavs, then called them undecodable."""
    before = _snapshot(sim_copy)
    status, _, err = cli("simulate", "--out", sim_copy, "--music", sim_copy / music, "--overwrite", *TINY)
    assert_one_line_error(status, err, "song21.wav", "inside --out")
    assert _snapshot(sim_copy) == before


@pytest.mark.parametrize(("samples", "subtype", "needle"), [
    (np.full(22050, np.nan), "FLOAT", "NaN"),
    (np.zeros(10), "PCM_16", "shorter than the 1 s"),
])
def test_bad_music_leaves_no_folder_behind(samples, subtype, needle, cli, tmp_path):
    """A refused run left simulation.json ("complete": false) and stimuli/, blocking the rerun."""
    music = _wav(tmp_path / "bad.wav", samples, subtype)
    out = tmp_path / "out"
    status, _, err = cli("simulate", "--out", out, "--music", music, "--n-subjects", "1", "--no-progress")
    assert_one_line_error(status, err, "bad.wav", needle)
    assert not out.exists()


def test_music_start_past_the_end_names_the_length_and_the_start(cli, tmp_path):
    """It said 'requested excerpt 5-2 s'."""
    music = _wav(tmp_path / "two.wav", 0.1 * np.ones(2 * 22050))
    status, _, err = cli("simulate", "--out", tmp_path / "out", "--music", music, "--music-start", "5",
                         "--n-subjects", "1", "--no-progress")
    line = assert_one_line_error(status, err, "two.wav: 2 s long", "--music-start 5", "earlier --music-start")
    assert "5-2" not in line


@pytest.mark.parametrize("existing", [False, True])
def test_a_failure_while_writing_removes_what_the_run_wrote(existing, cli, tmp_path, monkeypatch):
    """A disk that fills between songs: no half dataset is left (the folder goes only if the run made it)."""
    from eegmusic.replay import simulate as module

    def full_disk(path, *args):
        path.with_name(path.name + ".part").write_bytes(b"half a song")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(module, "_write_imputed", full_disk)  # the only fake: a disk that fills up
    out = tmp_path / "new" / "out"
    if existing:
        out.mkdir(parents=True)
    status, _, err = cli("simulate", "--out", out, "--n-songs", "2", *TINY)
    assert_one_line_error(status, err, "disk full")
    assert (sorted(out.rglob("*")) == []) if existing else not (tmp_path / "new").exists()


def test_overwrite_replaces_an_nmedt_simulation_by_cap_sessions_without_leftovers(sim_copy, cli):
    status, _, err = cli("simulate", "--out", sim_copy, "--montage", "openbci8", "--n-songs", "1",
                         "--overwrite", *TINY)
    assert status == 0, err
    assert sorted(_snapshot(sim_copy)) == ["S01.xdf", "simulation.json", "song21.wav"]


def test_overwrite_replaces_cap_sessions_by_an_nmedt_simulation_without_leftovers(cli, tmp_path):
    out = tmp_path / "cap"
    assert cli("simulate", "--out", out, "--montage", "openbci8", "--n-songs", "2", *TINY)[0] == 0
    status, _, err = cli("simulate", "--out", out, "--n-songs", "1", "--overwrite", *TINY)
    assert status == 0, err
    assert sorted(_snapshot(out)) == ["simulation.json", "song21_Imputed.mat", "stimuli/song21.wav"]


@pytest.mark.parametrize(("make", "needle"), [
    (lambda d: (d / "notes.txt").write_text("mine"), "not part of the earlier simulation (notes.txt)"),
    (lambda d: (d / "stimuli" / "mix.flac").write_bytes(b"mine"), "stimuli/mix.flac"),
])
def test_overwrite_never_deletes_files_simulate_did_not_write(make, needle, sim_copy, cli):
    """--overwrite wrote a dataset into a training run folder, and kept old files beside new ones."""
    make(sim_copy)
    before = _snapshot(sim_copy)
    status, _, err = cli("simulate", "--out", sim_copy, "--n-songs", "1", "--overwrite", *TINY)
    assert_one_line_error(status, err, needle)
    assert _snapshot(sim_copy) == before


@pytest.mark.parametrize(("args", "needle"), [
    (["--music", "{wav}", "--n-songs", "3"], "--n-songs"),
    (["--montage", "openbci8", "--raw"], "--raw"),
    (["--name", "foo"], "--name applies to --live only"),
    (["--delay", "2"], "--delay applies to --live only"),
    (["--music-start", "3"], "--music-start"),
])
def test_an_option_that_would_be_ignored_is_refused(args, needle, cli, tmp_path):
    wav = _wav(tmp_path / "a.wav", 0.1 * np.ones(3 * 22050))
    out = tmp_path / "out"
    status, _, err = cli("simulate", "--out", out, *[a.replace("{wav}", str(wav)) for a in args], *TINY)
    assert_one_line_error(status, err, needle)
    assert not out.exists()


@pytest.mark.parametrize(("args", "needle"), [
    ([], "--live needs --montage"),
    (["--montage", "openbci8", "--n-subjects", "2"], "--n-subjects applies to a dataset"),
    (["--montage", "openbci8", "--overwrite"], "--overwrite applies to a dataset"),
])
def test_live_refuses_what_it_would_ignore(args, needle, cli):
    """``--live`` without ``--montage`` streamed a 90-channel cap the help does not promise."""
    status, _, err = cli("simulate", "--live", *args)
    assert_one_line_error(status, err, needle)


def test_overwrite_never_writes_into_a_training_run(cli, tmp_path):
    """``--out <a training run> --overwrite`` wrote a dataset beside the checkpoint."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"weights nobody can train again")
    (run / "config.json").write_text("{}")
    before = _snapshot(run)
    status, _, err = cli("simulate", "--out", run, "--n-songs", "1", "--overwrite", *TINY)
    assert_one_line_error(status, err, "not written by eegmusic simulate", "checkpoint.pt")
    assert _snapshot(run) == before


@pytest.mark.parametrize("montage", [[], ["--montage", "openbci8"]])
def test_a_music_folder_with_more_tracks_than_song_slots_simulates_the_first_ten(cli, tmp_path, montage,
                                                                                  caplog):
    """--help's example folder (singularity-music) holds 13 tracks; it was refused ("takes 1 to 10 files")."""
    music = tmp_path / "music"
    music.mkdir()
    tone = 0.2 * np.sin(np.arange(3 * 22050) / 7.0)
    for k in range(12):
        _wav(music / f"track{k:02d}.wav", tone * (1 + k / 12))
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="eegmusic.replay.cli_simulate"):
        status, _, err = cli("simulate", "--out", out, "--music", music, *montage, *TINY)
    assert status == 0, err
    assert "leaving out track10.wav, track11.wav (name the files to choose others)" in caplog.text
    stimuli = out if montage else out / "stimuli"  # XDF sessions keep their songs beside them
    assert sorted(p.name for p in stimuli.glob("song*.wav")) == [f"song{n}.wav" for n in range(21, 31)]


def test_a_duration_below_two_seconds_names_the_real_minimum(cli, tmp_path):
    for value in ("-3", "0.1", "1.99"):
        status, _, err = cli("simulate", "--out", tmp_path / "out", "--duration", value)
        assert_one_line_error(status, err, "--duration must be in [2, 604800]", f"(got '{value}')")


@pytest.mark.parametrize("montage", [[], ["--montage", "openbci8"]], ids=["nmedt", "cap"])
def test_the_next_command_it_prints_runs_on_a_path_with_spaces(montage, cli, tmp_path):
    """The hint after a run is a command to paste: a folder with a space in it was printed bare."""
    import shlex

    out = tmp_path / "my data"
    status, printed, err = cli("simulate", "--out", out, "--n-songs", "1", *montage, *TINY)
    assert status == 0, err
    argv = shlex.split(printed.strip().splitlines()[-1].split("next: ", 1)[1])
    named = argv[argv.index("--data") + 1] if "--data" in argv else argv[-1]
    assert argv[:2] == (["eegmusic", "train"] if montage else ["eegmusic", "info"])
    assert Path(named) == (out / "S01.xdf" if montage else out) and Path(named).exists()


@pytest.mark.parametrize("replaced", [True, False])
def test_a_stopped_overwrite_says_the_earlier_dataset_is_gone(tmp_path, caplog, replaced):
    """``--overwrite`` deletes the earlier simulation before writing (so one as large as the disk can be
    replaced); stopped midway, the folder held neither, and the only word was 'interrupted'."""
    from eegmusic.replay.simulate import writing_dataset

    out = tmp_path / "sim"
    out.mkdir()
    (out / "song21_Imputed.mat").write_bytes(b"half written")
    with caplog.at_level(logging.WARNING), pytest.raises(KeyboardInterrupt):
        with writing_dataset(out, None, replaced=replaced):
            raise KeyboardInterrupt
    assert not (out / "song21_Imputed.mat").exists()          # the partial run's files go, as before
    said = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    if replaced:
        assert said == [f"stopped: {out} holds no dataset now (the earlier dataset there was deleted first, "
                        "--overwrite: run again to write one)"]
    else:
        assert said == []
