"""``eegmusic bench``: every benchmark of the project in one run, each beside its baseline.

Benchmarks live outside the runtime packages, in ``benchmarks/bench_<topic>.py`` (installed as
``eegmusic.benchmarks``), each with a function ``run(quick: bool) -> dict``. This command finds them
by name (it imports nothing it does not run), runs each in turn, prints one table and writes
everything, with a description of the machine, to a JSON file. A benchmark that fails is reported
as failed with its reason; the others still run.
"""

from __future__ import annotations

import argparse

from eegmusic.stream.options import output_file, positive_int, seconds

PACKAGES = ("eegmusic.benchmarks",)

OPTION_FLAGS = {"duration_s": ("--duration", "eegmusic bench latency --duration 600"),
                "seeds": ("--seeds", "eegmusic bench quality --seeds"),
                "jobs": ("--jobs", "eegmusic bench quality --jobs 2")}
"""Options passed on to a benchmark's ``run`` (those it lists in ``RUN_OPTIONS``): flag, example."""


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=output_file('.json'),
                        default="bench.json",
                        help="JSON file to write (default: bench.json); the quality benchmark also draws "
                        "its table (or with --seeds its spread) beside it as a figure (bench.json → "
                        "bench-quality.png, or with --seeds bench-spread.png)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --out file (refused otherwise), e.g. --out bench.json "
                        "--overwrite")
    parser.add_argument("--quick", action="store_true",
                        help="short runs: minutes for each light benchmark, longer "
                        "for those that train (quality, training, calibration, generative), e.g. "
                        "`eegmusic bench --quick --only vocoder inlet`")
    # none named: not "all of them"; given twice, both lists count (the last one alone ran)
    parser.add_argument("--only", nargs="+", action="extend", default=None, metavar="NAME",
                        help="run only these benchmarks, by short or module name (e.g. --only vocoder inlet; "
                        "the same as `eegmusic bench vocoder inlet`)")
    parser.add_argument("--duration", type=seconds(), default=None, metavar="S",
                        help="seconds of live measurement, for the latency benchmark only (the default hop "
                        "alone for S seconds), e.g. `eegmusic bench latency --duration 600`")
    parser.add_argument("--seeds", action="store_true",
                        help="the quality benchmark's spread check: its block and subject splits rerun over "
                        "several seeds (three block draws; every listener held out once), means and "
                        "per-seed ratios beside the goals; hours on 2 cores, minutes with --quick, e.g. "
                        "`eegmusic bench quality --seeds --out spread.json`")
    parser.add_argument("--jobs", type=positive_int, default=None, metavar="N",
                        help="processes for the quality benchmark's cells (one per evoked share and split, "
                        "and one for the noise-free reference; with --seeds one per share and split with "
                        "its seeds), each with cores / N threads; default 1, one after another. On 2 cores "
                        "--jobs 2 takes about half the time, e.g. `eegmusic bench quality --jobs 2 --out "
                        "quality.json`")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="benchmarks to run by short name, e.g. `eegmusic bench latency` (= --only "
                        "bench_latency)")
    names = ", ".join(name.rsplit(".", 1)[-1].removeprefix("bench_") for name in discover())
    parser.epilog = (
        f"Benchmarks: {names}.\n\n"
        "Examples:\n  eegmusic bench --quick --out bench.json\n  eegmusic bench latency --out latency.json   "
        "# EEG event -> audible sound through PulseAudio\n"
        "  eegmusic bench latency --duration 600 --out soak.json   # 10 min at the default hop: underruns\n"
        "  eegmusic bench quality --seeds --out spread.json   # quality over seeds and held-out listeners")


def discover() -> list[str]:
    """Return the module names of every ``bench_*.py`` in ``eegmusic.benchmarks``, sorted."""
    import importlib.util
    from pathlib import Path

    names = []
    for package in PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.submodule_search_locations is None:
            continue
        for folder in spec.submodule_search_locations:
            names += [f"{package}.{p.stem}" for p in sorted(Path(folder).glob("bench_*.py"))]
    return names


def machine_description() -> dict:
    """CPU, core count, memory, OS and library versions, for the results' header."""
    import os
    import platform

    import numpy
    import onnxruntime

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(memory_gib, 1),
        "platform": platform.platform(), "python": platform.python_version(),
        "numpy": numpy.__version__, "onnxruntime": onnxruntime.__version__,
    }


def _rows(name: str, result, prefix: str = "") -> list[tuple[str, str]]:
    """Flatten a result dict into (key, value) rows for the printed table."""
    rows = []
    if isinstance(result, dict):
        for key, value in result.items():
            rows += _rows(name, value, f"{prefix}{key}." if isinstance(value, dict) else f"{prefix}{key}")
    elif isinstance(result, float):
        rows.append((prefix, f"{result:.4g}"))
    elif isinstance(result, (int, str, bool)) or result is None:
        rows.append((prefix, str(result)))
    elif isinstance(result, list) and len(result) <= 8:
        rows.append((prefix, ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in result)))
    return rows


def figure_path(out, module_name: str, *, seeds: bool = False):
    """Where a benchmark's figure goes: beside the JSON, ``bench.json`` → ``bench-quality.png``.

    A ``--seeds`` run (the quality benchmark's spread check, the only one that takes it) draws another
    figure, so it gets another name, ``bench-spread.png``: drawing both runs into one folder (as
    ``readme_tables --figures docs`` does) must not put one in the other's place.
    """
    from pathlib import Path

    short = "spread" if seeds else module_name.split(".")[-1].removeprefix("bench_")
    return Path(out).with_name(f"{Path(out).stem}-{short}.png")


def draw_figures(benchmarks: dict, out, *, seeds: bool = False) -> list:
    """Draw the figure of every benchmark that has one (a module-level ``figure(result, path)``).

    Each goes beside the JSON ``out``, named after it and the benchmark: ``bench.json`` →
    ``bench-quality.png`` (a ``--seeds`` run's: ``bench-spread.png``, :func:`figure_path`). A failed
    write leaves the old figure (the figures write atomically).

    Returns
    -------
    list of (Path, str or None)
        Each figure's path, and why it was not drawn in one line naming it (None: drawn).
    """
    import importlib

    from eegmusic.stream.errors import OutputError

    drawn = []
    for module_name, entry in benchmarks.items():
        if entry.get("status") != "ok":
            continue
        try:
            draw = getattr(importlib.import_module(module_name), "figure", None)
        except ImportError:  # a JSON from another version may name a benchmark this one lacks
            continue
        if draw is None:
            continue
        path = figure_path(out, module_name, seeds=seeds)
        try:
            if draw(entry["result"], path) is not None:
                drawn.append((path, None))
        except OutputError as error:  # a full disk: the message names the file and what was kept
            drawn.append((path, str(error)))
        except Exception as error:  # noqa: BLE001 - reported in one line, with the others drawn
            drawn.append((path, f"could not draw {path}: {error}"))
    return drawn


def _figures(benchmarks: dict, out, *, seeds: bool = False) -> list:
    """:func:`draw_figures` for ``eegmusic bench``: a figure that cannot be drawn is logged and skipped,
    since the JSON, written already, is what the run produced. Returns the figures drawn."""
    import logging

    written = []
    for path, error in draw_figures(benchmarks, out, seeds=seeds):
        if error is None:
            written.append(path)
        else:
            logging.getLogger("eegmusic.bench").warning("%s", error)
    return written


def run_bench(args) -> int:
    """Run ``eegmusic bench``, with ``--out`` (and the figures beside it) held for the whole run: a
    second bench writing the same file meanwhile is refused in one line, not replaced at the end."""
    from eegmusic.stream.atomic import output_locks

    with output_locks([args.out], "bench"):
        return _bench(args)


def _bench(args) -> int:
    """:func:`run_bench` with ``--out`` held."""
    import importlib
    import json
    import logging
    import sys
    import time
    import traceback
    from datetime import UTC, datetime

    from eegmusic.stream.atomic import refuse_existing, write_json
    from eegmusic.stream.errors import OutputError

    refuse_existing(args.out, overwrite=args.overwrite, what="--out")   # before hours of benchmarks
    log = logging.getLogger("eegmusic.bench")
    results = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
               "quick": bool(args.quick), "seeds": bool(args.seeds), "jobs": args.jobs or 1,
               "machine": machine_description(), "benchmarks": {}}
    modules = discover()
    given = list(args.only or []) + list(args.names)
    # short names in --only too ("--only vocoder" said "no benchmark named vocoder; pick from: …, vocoder")
    only = [n if n.startswith("bench_") or "." in n else f"bench_{n}" for n in given]
    if only:
        names = {m.split(".")[-1] for m in modules} | set(modules)
        unknown = [name for name, full in zip(given, only, strict=True) if full not in names]
        if unknown:
            from eegmusic.stream.errors import ConfigError

            known = ", ".join(m.split(".")[-1].removeprefix("bench_") for m in modules)
            raise ConfigError(f"no benchmark named {', '.join(sorted(unknown))}; pick from: {known}")
        modules = [m for m in modules if {m.split(".")[-1], m} & set(only)]
    options = {}
    if args.duration is not None:
        options["duration_s"] = args.duration
    if args.seeds:
        options["seeds"] = True
    if args.jobs is not None:
        options["jobs"] = args.jobs
    for option in options:
        flag, example = OPTION_FLAGS[option]
        refusing = [m.split(".")[-1].removeprefix("bench_") for m in modules   # as the user names them
                    if option not in getattr(importlib.import_module(m), "RUN_OPTIONS", ())]
        if refusing:
            from eegmusic.stream.errors import ConfigError

            raise ConfigError(f"{flag} does not apply to {', '.join(refusing)}; name the benchmark it "
                              f"applies to alone, e.g. `{example}`")
    for module_name in modules:  # a figure is replaced only with --overwrite, like the JSON
        if hasattr(importlib.import_module(module_name), "figure"):
            refuse_existing(figure_path(args.out, module_name, seeds=args.seeds), overwrite=args.overwrite,
                            what="figure")

    def save() -> None:
        write_json(args.out, json.loads(json.dumps(results, default=float)), indent=2)

    # Ctrl-C and SIGTERM (stream.cli.main) raise KeyboardInterrupt: the running benchmark cleans up on
    # its way out, and the benchmarks that finished are still written to --out
    for module_name in modules:
        log.info("running %s", module_name)
        start = time.perf_counter()
        try:
            result = importlib.import_module(module_name).run(quick=args.quick, **options)
            status = "ok"
        except KeyboardInterrupt:
            results["interrupted"] = module_name
            if results["benchmarks"]:
                _print_results(results)  # what finished is shown, not only written (first: a full disk)
                save()
                print(f"interrupted during {module_name}; wrote the {len(results['benchmarks'])} "
                      f"that finished to {args.out}", file=sys.stderr)
            raise
        except Exception as error:  # a failing benchmark must not hide the others
            result = {"error": f"{type(error).__name__}: {error}",
                      "traceback": traceback.format_exc()}  # whole: the raising frame is last
            status = "failed"
        results["benchmarks"][module_name] = {
            "status": status, "seconds": round(time.perf_counter() - start, 1), "result": result}
    try:
        save()
    except OutputError:  # a full disk after hours of benchmarks: their results are shown all the same
        _print_results(results)
        raise
    figures = _figures(results["benchmarks"], args.out, seeds=args.seeds)
    _print_results(results)
    print(f"\nwrote {args.out}" + "".join(f" and {path}" for path in figures))
    return 0 if all(e["status"] == "ok" for e in results["benchmarks"].values()) else 1


def _print_results(results: dict) -> None:
    """The run's table on standard output: the machine, then every benchmark's rows."""
    machine = results["machine"]
    print(f"eegmusic bench — {results['date']} — {machine['cpu']}, {machine['cores']} cores, "
          f"{machine['memory_gib']} GiB, onnxruntime {machine['onnxruntime']}")
    for module_name, entry in results["benchmarks"].items():
        print(f"\n## {module_name} ({entry['status']}, {entry['seconds']} s)")
        result = entry["result"]
        if entry["status"] != "ok":
            print(f"  {result['error']}")
            continue
        for key, value in _rows(module_name, result):
            print(f"  {key:<58} {value}")
