"""``eegmusic bench --out bench.json``, then ``readme_tables`` on it: what regenerates the README."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from eegmusic.benchmarks import readme_tables
from eegmusic.benchmarks.cli_bench import discover
from eegmusic.stream.cli import main

from tests.fixtures.processes import wait_until


def test_bench_writes_json_and_readme_tables_renders_it(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--only", "bench_simulate", "--out", str(out)]) == 0
    bench = json.loads(out.read_text())
    assert bench["quick"] is True and bench["seeds"] is False
    assert {"cpu", "cores", "memory_gib"} <= set(bench["machine"])
    (entry,) = bench["benchmarks"].values()
    assert entry["status"] == "ok" and "simulate_song" in entry["result"]
    capsys.readouterr()

    tables = tmp_path / "tables.md"
    assert readme_tables.main([str(out), "--out", str(tables)]) == 0
    text = tables.read_text()
    assert "| simulator, 1 song x 3 participants x 30 s |" in text
    assert "scipy.io.savemat" in text and "--quick" in text.splitlines()[0]
    # benchmarks not in this bench.json say so instead of showing an old figure
    assert "| `bench_training` | not in this bench.json" in text
    assert "`bench_quality`: not run." in text


def test_a_failed_benchmark_is_a_row_saying_why():
    bench = {
        "date": "2026-01-01",
        "quick": False,
        "machine": {"cpu": "x", "cores": 2, "memory_gib": 1.0, "onnxruntime": "1"},
        "benchmarks": {
            "eegmusic.benchmarks.bench_inlet": {
                "status": "failed",
                "seconds": 1.0,
                "result": {"error": "RuntimeError: no stream"},
            },
            "eegmusic.benchmarks.bench_simulate": {
                "status": "ok",
                "seconds": 1.0,
                "result": {"simulate_song": {}},
            },
        },
    }
    table = readme_tables.performance_table(bench)
    assert "| `bench_inlet` | failed: RuntimeError: no stream |" in table
    assert "| `bench_simulate` | not rendered (KeyError" in table  # a result whose layout changed


def test_bad_bench_json_is_a_one_line_error(tmp_path, capsys):
    missing = tmp_path / "none.json"
    assert readme_tables.main([str(missing)]) == 2
    err = capsys.readouterr().err
    assert (
        "cannot read" in err and f"run eegmusic bench --out {missing}" in err and len(err.splitlines()) == 1
    )
    other = tmp_path / "other.json"
    other.write_text("[1, 2]")
    assert readme_tables.main([str(other)]) == 2
    assert "is not eegmusic bench output" in capsys.readouterr().err
    listed = tmp_path / "listed.json"   # benchmarks as a list, not by name: an AttributeError traceback
    listed.write_text('{"machine": {}, "benchmarks": []}')
    assert readme_tables.main([str(listed)]) == 2
    assert "is not eegmusic bench output" in capsys.readouterr().err


def test_bad_readme_tables_outputs_are_one_line_errors_before_drawing(tmp_path, capsys):
    """A missing --out folder, or a file as --figures, was a traceback after the rendering."""
    bench = tmp_path / "bench.json"
    bench.write_text('{"machine": {}, "benchmarks": {}}')
    assert readme_tables.main([str(bench), "--out", str(tmp_path / "none" / "t.md")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "its folder does not exist" in err[0], err
    (tmp_path / "afile").write_text("")
    assert readme_tables.main([str(bench), "--figures", str(tmp_path / "afile")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file, not a folder" in err[0], err


def test_every_bench_module_is_discovered_and_has_a_readme_builder_or_table():
    names = {name.rsplit(".", 1)[-1] for name in discover()}
    assert {"bench_training", "bench_inlet", "bench_replay", "bench_soak"} <= names
    rendered = set(readme_tables.ROW_BUILDERS) | set(readme_tables.TABLE_KEYS)
    assert names <= rendered, f"no README rows for {sorted(names - rendered)}"


def _literal_keys(tree: ast.AST):
    """The string keys of a module's dict literals and subscripts (an f-string's fields as ``{}``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            candidates = [key for key in node.keys if key is not None]
        elif isinstance(node, ast.Subscript):
            candidates = [node.slice]
        else:
            continue
        for key in candidates:
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                yield key.value
            elif isinstance(key, ast.JoinedStr):
                yield "".join(part.value if isinstance(part, ast.Constant) else "{}" for part in key.values)


def test_every_ratio_key_of_a_benchmark_says_its_direction():
    """``bench_simulate``'s bare ``ratio`` was ours / baseline, ``bench_gui``'s baseline / ours, and
    ``cpu_ratio`` meant ours / mne-lsl in ``bench_inlet`` but baseline / ours in ``bench_training``:
    a ratio's key now names its numerator and denominator (``ratio_ours_over_baseline``)."""
    import eegmusic.benchmarks as package

    unclear = set()
    for path in sorted(Path(package.__path__[0]).glob("bench_*.py")):
        for key in _literal_keys(ast.parse(path.read_text())):
            words = key.split("_")
            if {"ratio", "speedup"} & set(words) and "over" not in words:
                unclear.add(f"{path.stem}: {key}")
    assert not unclear, sorted(unclear)


def test_duration_is_refused_for_a_benchmark_that_does_not_measure_live(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "vocoder", "--duration", "600", "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--duration does not apply to vocoder;" in error[0]
    assert "eegmusic bench latency --duration 600" in error[0] and not out.exists()


def test_seeds_is_refused_for_a_benchmark_without_a_spread_check(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "vocoder", "--seeds", "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--seeds does not apply to vocoder;" in error[0]
    assert "eegmusic bench quality --seeds" in error[0] and not out.exists()


def test_the_tables_header_names_the_flags_of_the_run():
    machine = {"cpu": "x", "cores": 2, "memory_gib": 1.0, "onnxruntime": "1"}
    spread = readme_tables.header({"date": "d", "quick": True, "seeds": True, "machine": machine})
    assert spread.startswith("Measured by `eegmusic bench --quick --seeds` on d:")
    parallel = readme_tables.header({"date": "d", "quick": False, "jobs": 2, "machine": machine})
    assert parallel.startswith("Measured by `eegmusic bench --jobs 2` on d:")
    assert "`eegmusic bench` on d:" in readme_tables.header({"date": "d", "quick": False, "machine": machine})


def test_sigterm_removes_the_benchmarks_temporary_folder_and_keeps_what_finished(tmp_path):
    """SIGTERM ended Python without cleanup: the running benchmark's temporary folder stayed behind and
    the benchmarks that had finished were lost. It now stops the run as Ctrl-C does."""
    import os
    import signal
    import subprocess
    import sys

    temp = tmp_path / "tmp"
    temp.mkdir()
    out = tmp_path / "bench.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "eegmusic", "-q", "bench", "--quick", "--only", "bench_montage",
         "bench_runtime", "--out", str(out)], env={**os.environ, "TMPDIR": str(temp), "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: list(temp.glob("eegmusic-bench-runtime-*")), process,
                   what="bench_runtime folder", timeout_s=120)
        process.send_signal(signal.SIGTERM)
        printed, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err
    # the finished benchmark's rows are printed too, not only written
    assert "## eegmusic.benchmarks.bench_montage (ok" in printed
    assert "bench_runtime (" not in printed
    assert not list(temp.glob("eegmusic-bench-*")), sorted(p.name for p in temp.iterdir())
    bench = json.loads(out.read_text())
    assert list(bench["benchmarks"]) == ["eegmusic.benchmarks.bench_montage"]
    assert bench["interrupted"] == "eegmusic.benchmarks.bench_runtime"
    assert "interrupted during eegmusic.benchmarks.bench_runtime; wrote the 1 that finished" in err


def test_only_takes_short_names_and_adds_up_when_repeated(tmp_path, capsys):
    """`--only vocoder` said "no benchmark named vocoder; pick from: …, vocoder", and a second --only
    silently replaced the first."""
    from eegmusic.stream.cli import build_parser

    argv = ["bench", "--only", "vocoder", "--only", "bench_inlet", "--out", "x.json"]
    args = build_parser().parse_args(argv)
    assert args.only == ["vocoder", "bench_inlet"]
    assert main(["bench", "--only", "vocoder", "nosuch", "--out", str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err
    assert "no benchmark named nosuch; pick from:" in err and "named vocoder" not in err, err
    assert not (tmp_path / "b.json").exists()


def test_figures_go_beside_the_json_for_benchmarks_that_draw_one(tmp_path, capsys):
    from tests.benchmarks.test_bench_quality import _figure_report

    bench = {"date": "2026-01-01", "quick": False,
             "machine": {"cpu": "x", "cores": 2, "memory_gib": 1.0, "onnxruntime": "1"},
             "benchmarks": {
                 "eegmusic.benchmarks.bench_quality": {"status": "ok", "seconds": 1.0,
                                                       "result": _figure_report()},
                 "eegmusic.benchmarks.bench_simulate": {"status": "ok", "seconds": 1.0,
                                                        "result": {"simulate_song": {}}},
                 "eegmusic.benchmarks.bench_gone": {"status": "ok", "seconds": 1.0, "result": {}}}}
    out = tmp_path / "run.json"
    out.write_text(json.dumps(bench))
    # the simulator draws nothing; a benchmark this version lacks is skipped, not an error
    figures = tmp_path / "f"
    assert readme_tables.main([str(out), "--out", str(tmp_path / "t.md"), "--figures", str(figures)]) == 0
    # named as `eegmusic bench --out DIR/bench.json` names them, not after run.json
    assert sorted(p.name for p in figures.iterdir()) == ["bench-quality.png"]
    assert "drew" in capsys.readouterr().err
    # a failed quality run has nothing to draw
    bench["benchmarks"]["eegmusic.benchmarks.bench_quality"] = {"status": "failed", "seconds": 1.0,
                                                                "result": {"error": "x"}}
    from eegmusic.benchmarks.cli_bench import _figures

    assert _figures(bench["benchmarks"], tmp_path / "other.json") == []


def test_a_spread_runs_figure_does_not_take_the_tables_place(tmp_path, capsys):
    from tests.benchmarks.test_bench_quality import _figure_report, _spread_figure_report

    figures = tmp_path / "docs"
    runs = (("table", False, _figure_report()), ("spread", True, _spread_figure_report()))
    for name, seeds, report in runs:
        bench = {"date": "2026-01-01", "quick": False, "seeds": seeds,
                 "machine": {"cpu": "x", "cores": 2, "memory_gib": 1.0, "onnxruntime": "1"},
                 "benchmarks": {"eegmusic.benchmarks.bench_quality": {"status": "ok", "seconds": 1.0,
                                                                      "result": report}}}
        (tmp_path / f"{name}.json").write_text(json.dumps(bench))
        assert readme_tables.main([str(tmp_path / f"{name}.json"), "--out", str(tmp_path / "t.md"),
                                   "--figures", str(figures)]) == 0
    # both runs drawn into one folder: the spread check's figure beside the table's, not over it
    drawn = {p.name: p.read_bytes() for p in figures.iterdir()}
    assert sorted(drawn) == ["bench-quality.png", "bench-spread.png"], sorted(drawn)
    assert drawn["bench-quality.png"] != drawn["bench-spread.png"]
    assert "bench-spread.png" in capsys.readouterr().err


def test_jobs_is_refused_where_it_does_not_apply(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["bench", "simulate", "--jobs", "2", "--out", str(out)]) == 2
    assert "--jobs does not apply to simulate;" in capsys.readouterr().err and not out.exists()
    from eegmusic.benchmarks import bench_quality
    from eegmusic.stream.errors import ConfigError

    for seeds in (False, True):  # the module's own entry refuses what the command line cannot pass
        with pytest.raises(ConfigError, match="--jobs must be 1 or more"):
            bench_quality.run(quick=True, seeds=seeds, jobs=0)


def test_an_existing_figure_is_refused_like_the_json(tmp_path, capsys, monkeypatch):
    from eegmusic.benchmarks import bench_quality

    def hours_of_work(**_):
        raise AssertionError("the quality run started although its figure was to be refused")

    monkeypatch.setattr(bench_quality, "run", hours_of_work)
    out = tmp_path / "b.json"
    (tmp_path / "b-quality.png").write_bytes(b"kept")
    assert main(["bench", "quality", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "figure file" in err and "b-quality.png already exists; pass --overwrite" in err
    assert (tmp_path / "b-quality.png").read_bytes() == b"kept" and not out.exists()
    # a spread check's figure has its own name, and is refused by it
    (tmp_path / "b-spread.png").write_bytes(b"kept")
    assert main(["bench", "quality", "--seeds", "--out", str(out)]) == 2
    assert "b-spread.png already exists; pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "b-spread.png").read_bytes() == b"kept" and not out.exists()


def test_a_failed_benchmarks_traceback_keeps_the_line_that_raised(tmp_path, capsys, monkeypatch):
    """The stored traceback kept the three outermost frames (the bench's own loop) and dropped the frame
    that raised; it now ends where the error was raised."""
    from eegmusic.benchmarks import bench_simulate

    def measure(depth):
        if depth == 0:
            raise RuntimeError("the innermost failure")
        return measure(depth - 1)

    monkeypatch.setattr(bench_simulate, "run", lambda **_: measure(4))
    out = tmp_path / "bench.json"
    assert main(["bench", "--only", "bench_simulate", "--out", str(out)]) == 1
    capsys.readouterr()
    result = json.loads(out.read_text())["benchmarks"]["eegmusic.benchmarks.bench_simulate"]["result"]
    assert result["error"] == "RuntimeError: the innermost failure"
    assert 'raise RuntimeError("the innermost failure")' in result["traceback"], result["traceback"]


def test_a_figure_the_disk_cannot_take_keeps_the_old_one_and_fails(tmp_path, capsys):
    """savefig wrote straight onto the figure: a full disk truncated the README's old PNG, and
    readme_tables said "could not draw" in a log line and exited 0."""
    import resource

    from tests.benchmarks.test_bench_quality import _figure_report

    bench = {"date": "2026-01-01", "quick": False,
             "machine": {"cpu": "x", "cores": 2, "memory_gib": 1.0, "onnxruntime": "1"},
             "benchmarks": {"eegmusic.benchmarks.bench_quality": {"status": "ok", "seconds": 1.0,
                                                                  "result": _figure_report()}}}
    out = tmp_path / "bench.json"
    out.write_text(json.dumps(bench))
    figures = tmp_path / "docs"
    assert readme_tables.main([str(out), "--figures", str(figures)]) == 0
    figure = figures / "bench-quality.png"
    old = figure.read_bytes()
    capsys.readouterr()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(old) // 3, hard))   # the kernel's EFBIG, as a full quota
    try:
        status = readme_tables.main([str(out), "--figures", str(figures)])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    captured = capsys.readouterr()
    assert status == 2 and "| " in captured.out, captured   # the tables are printed all the same
    assert captured.err.strip().splitlines() == [
        f"readme_tables: disk full while writing {figure} (File too large); bench-quality.png is unchanged; "
        "free space or choose another folder"], captured.err
    assert figure.read_bytes() == old and sorted(p.name for p in figures.iterdir()) == ["bench-quality.png"]


def test_bench_help_lists_every_benchmark_by_the_name_it_takes(capsys):
    """The names were listed only in the refusal of an unknown one."""
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    names = [module.rsplit(".", 1)[-1].removeprefix("bench_") for module in discover()]
    assert len(names) >= 10 and f"Benchmarks: {', '.join(names)}." in text


def test_an_out_folder_that_takes_no_file_is_refused_before_any_benchmark_runs(capsys, monkeypatch):
    """The folder's permission bits said writable (always so for root: /proc), so the run went ahead and
    failed to write its JSON at the end, its results lost and not even printed."""
    from eegmusic.benchmarks import bench_simulate

    ran = []
    monkeypatch.setattr(bench_simulate, "run", lambda **_: ran.append(True) or {"figure": 1.0})
    # the permission bits say writable whoever runs this, as they do to root (the parser reads them)
    monkeypatch.setattr("os.access", lambda *args, **kwargs: True)
    assert main(["bench", "simulate", "--out", "/proc/eegmusic-bench.json"]) == 2
    captured = capsys.readouterr()
    error = captured.err.strip().splitlines()
    assert len(error) == 1 and "/proc/eegmusic-bench.json" in error[0], captured
    assert not ran, "the benchmark ran although its --out could not be written"


def test_a_json_the_disk_cannot_take_still_prints_the_results(tmp_path, capsys, monkeypatch):
    """A full disk at the end of the run (hours of benchmarks) lost everything: the JSON could not be
    written, and the table, printed after it, never was."""
    import resource

    from eegmusic.benchmarks import bench_simulate

    monkeypatch.setattr(bench_simulate, "run", lambda **_: {"median_s": 0.25, "padding": "x" * 20_000})
    out = tmp_path / "bench.json"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))   # the kernel's EFBIG, as a full quota
    try:
        status = main(["bench", "simulate", "--out", str(out)])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    captured = capsys.readouterr()
    assert status == 2 and "median_s" in captured.out and "0.25" in captured.out, captured
    assert len(captured.err.strip().splitlines()) == 1 and str(out) in captured.err, captured.err
    assert not out.exists() and not list(tmp_path.iterdir())
