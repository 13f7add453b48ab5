"""Turn ``eegmusic bench``'s JSON into the README's results and performance tables (markdown).

Usage::

    eegmusic bench --out bench.json
    python -m eegmusic.benchmarks.readme_tables bench.json > tables.md

Every figure of the README's "Results" and "Performance" sections comes out of ``bench.json``: the
quality table that ``bench_quality`` renders itself, the vocoder table of ``bench_vocoder``, and one
performance row per claim (ours, the baseline measured in the same run, their ratio, the goal), built
here from the benchmarks' results. A benchmark that is missing or failed in ``bench.json`` gets a
row saying so, never an old figure. The header names the machine, the date and the load.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

Row = tuple[str, str, str, str, str]
"""(what, ours, baseline in the same run, ratio, goal)."""


def _fmt(value: float) -> str:
    """3 significant figures, never in exponent notation for the magnitudes a table shows."""
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _ms(value) -> str:
    return "n/a" if value is None else f"{_fmt(value)} ms"


def _x(value) -> str:
    return "n/a" if value is None else f"{_fmt(value)}×"


def _met(flag) -> str:
    return "" if flag is None else (" — met" if flag else " — **not met**")


# ---- one builder per benchmark: result dict → rows --------------------------------------------------------
def rows_runtime(result: dict) -> list[Row]:
    rows = []
    for name, model in result["models"].items():
        if "failed" in model:
            rows.append((f"decoder compute per window, `{name}`", f"failed: {model['failed']}", "", "", ""))
            continue
        ort, torch = model["ort_cpu_1t"], model["torch_eager_1t"]
        rows.append(
            (
                f"decoder compute per window, `{name}`, onnxruntime 1 thread",
                f"{_ms(ort['p50_ms'])} p50, {_ms(ort['p99_ms'])} p99",
                f"torch eager {_ms(torch['p50_ms'])} p50",
                f"{_x(model['ratio_torch_over_ort_1t_p50'])} faster",
                "≤ 2 ms p99, ≥ 5× torch (`cnn`)" if name == "cnn" else "",
            )
        )
    worst = max(m["max_abs_diff_db_1t"] for m in result["models"].values() if "failed" not in m)
    rows.append(("ONNX vs torch outputs, every model", f"max abs diff {worst:.2g} dB", "", "", "< 1e-3 dB"))
    for name, model in result["models"].items():
        if "export_s_torch_lstm" in model:
            rows.append((f"ONNX export, `{name}` (its LSTMs as one operator each)",
                         f"{model['export_s']:.2f} s",
                         f"torch's own LSTM path {model['export_s_torch_lstm']:.2f} s",
                         f"{_x(model['ratio_export_torch_lstm_over_ours'])} faster", ""))
    for key in ("live", "live_linear"):
        live = result[key]
        what = f"window arrival → audio buffer, live replay, `{live['model']}` (hop {live['hop_ms']:g} ms)"
        rows.append(
            (
                what,
                f"{_ms(live['latency_ms']['arrival_to_buffered']['p50'])} p50, "
                f"{_ms(live['hop_to_audio_buffer_p99_ms'])} p99",
                "",
                "",
                "≤ 15 ms p99",
            )
        )
    return rows


def rows_inlet(result: dict) -> list[Row]:
    ours, source, theirs = result["ours_inlet"], result["ours_source"], result["mne_lsl"]
    stream = result["stream"]
    what = f"{stream['channels']} ch at {stream['rate_hz']:g} Hz"
    return [
        (
            f"our inlet, {what}: CPU per second of data",
            f"{ours['cpu_s_per_data_s']:.3g} s",
            f"mne-lsl `StreamLSL` {theirs['cpu_s_per_data_s']:.3g} s",
            _x(result.get("ratio_cpu_ours_over_mne")),
            "≤ 0.5×" + _met((result.get("goals") or {}).get("ratio_cpu_ours_over_mne_le_0.5")),
        ),
        (
            "push → in buffer (both timed in their acquisition callback)",
            f"{_ms(ours['latency']['p50_ms'])} p50, {_ms(ours['latency']['p99_ms'])} p99",
            f"mne-lsl {_ms(theirs['latency']['p50_ms'])} p50, {_ms(theirs['latency']['p99_ms'])} p99",
            f"{_x(result.get('ratio_latency_p50_ours_over_mne'))} at p50",
            "",
        ),
        (
            "push → window queued (incl. resampling to 125 Hz)",
            f"{_ms(source['latency']['p50_ms'])} p50, {_ms(source['latency']['p99_ms'])} p99",
            "",
            "",
            "≤ 2 ms p99" + _met(result["goals"]["window_p99_le_2ms"] if result.get("goals") else None),
        ),
    ]


def rows_reconnect(result: dict) -> list[Row]:
    done, fresh = result["reconnect_s"], result["fresh_connect_s"]
    goal = next(iter(result["goals"].values()))
    return [(
        f"source lost and back under the same source_id → samples flow again ({result['trials']} trials, "
        f"{result['with_impostor']} with a same-name impostor to refuse)",
        "n/a" if done is None
        else f"{_fmt(done['p50'])} s p50, {_fmt(done['p90'])} s p90, {_fmt(done['max'])} s max",
        "n/a" if fresh is None else f"a fresh `Inlet` started then {_fmt(fresh['p50'])} s p50",
        _x(result.get("reconnect_over_fresh_p50")) + " at p50",
        "every one ≤ 2 s" + _met(goal),
    )]


def rows_replay(result: dict) -> list[Row]:
    rows = []
    for config, entry in result["jitter"].items():
        ours, theirs = entry["eegmusic"], entry["mne_lsl_PlayerLSL"]
        if "error" in ours or "error" in theirs:
            rows.append((f"replay jitter, {config}", ours.get("error", ""), theirs.get("error", ""), "", ""))
            continue
        rows.append(
            (
                f"replay timestamp jitter, {config}",
                f"{_ms(ours['jitter']['p50_ms'])} p50, {_ms(ours['jitter']['p99_ms'])} p99",
                f"`PlayerLSL` {_ms(theirs['jitter']['p50_ms'])} / {_ms(theirs['jitter']['p99_ms'])}",
                f"PlayerLSL p99 / ours {_x(entry['ratio_p99_mne_over_ours'])}",
                f"p99 ≤ {entry['goal_p99_ms']:g} ms" + _met(entry["meets_goal"]),  # the bench's verdict
            )
        )
    drift = result["drift_accelerated_hour"]
    ours, theirs = drift["eegmusic"], drift["mne_lsl_PlayerLSL"]
    rows.append(
        (
            f"replay drift after an accelerated hour (speed {drift['speed']:g})",
            f"{ours['drift_ms']:+.3g} ms, timestamp rate error {ours['timestamp_rate_error_ppm']:g} ppm, "
            f"{ours['data_hours_received']:.3g} h received",
            f"`PlayerLSL` {theirs['drift_ms']:+.3g} ms, {theirs['data_hours_received']:.3g} h received",
            "",
            "zero drift",
        )
    )
    return rows


def rows_soak(result: dict) -> list[Row]:
    soak, song = result["soak"], result["full_song"]
    old_queue = result.get("soak_nominal_queue")
    baseline = (f"; {old_queue['samples_lost']:,} lost with the old inlet queue in nominal seconds, same run"
                if old_queue else "")
    return [
        (
            f"soak: {soak['stream_hours']:g} h of stream decoded at {soak['speed']:g}× (`{soak['model']}`)",
            f"{soak['samples_sent']:,} samples sent, {soak['samples_received']:,} received after draining "
            f"({soak['samples_lost']:,} lost{baseline}), {soak['gaps']} gaps; "
            f"{soak['windows_decoded']:,} windows decoded, {soak['windows_dropped']:,} dropped and counted",
            f"RSS first {soak['rss_mib_first']:.0f} MiB",
            f"RSS last/first {soak['rss_growth_ratio_last_over_first']}",
            "flat memory, no loss" + _met(result.get("meets_goal")),   # runs saved before it: no verdict
        ),
        (
            f"offline decode of a whole {song['song_s']:g}-s song, every 0.1-s hop (`{song['model']}`)",
            f"{song['batched_s']:g} s batched (RTF {song['real_time_factor_batched']:g})",
            f"one window at a time {song['one_at_a_time_s']:g} s",
            _x(song["ratio_one_at_a_time_over_batched"]),
            "",
        ),
    ]


def rows_training(result: dict) -> list[Row]:
    rows = []
    size = result["size"]
    for entry in result["epoch"].values():
        ours, base = entry["ours"], entry["baseline_plain_torch"]
        rows.append(
            (
                f"`convnet` training epoch, {ours['windows']:,} windows, batch {ours['batch']}, "
                f"{result['torch_threads']} threads",
                f"{ours['train_pass_s']:.0f} s ({ours['windows_per_s']:.0f} windows/s)",
                f"plain torch (Dataset + DataLoader, same model) {base['train_pass_s']:.0f} s "
                f"({base['windows_per_s']:.0f} windows/s)",
                _x(entry["ratio_windows_per_s_ours_over_baseline"]) + " the windows/s",
                "≤ 300 s for 54k windows" if ours["windows"] >= 50_000 else "",
            )
        )
    if result.get("nmedt_epoch_s") is not None:
        rows.append(
            (
                f"NMED-T-size epoch ({size['songs']} songs × {size['listeners']} listeners × "
                f"{size['seconds']} s), measured, incl. validation and checkpoint",
                f"{result['nmedt_epoch_s']:.0f} s",
                f"target {result['target_epoch_s']:.0f} s",
                _x(result["nmedt_epoch_s"] / result["target_epoch_s"]),
                "≤ 5 min on 2 cores" + _met(result["meets_target"]),
            )
        )
    scaling = result["scaling"]
    runs = scaling["runs"]
    rows.append(
        (
            f"training under torchrun, {scaling['windows']:,} windows, batch {scaling['batch']}, "
            f"{scaling['cores']} cores",
            ", ".join(f"{n} proc. × {r['threads_per_process']} thr. {r['windows_per_s']:.0f} windows/s"
                      for n, r in runs.items()),
            f"1 process {runs[next(iter(runs))]['windows_per_s']:.0f} windows/s; one core (1 process × 1 "
            f"thread) {scaling['one_core']['windows_per_s']:.0f} windows/s",
            "speed-up " + " / ".join(f"{r['speedup_over_one_process']:.2f}×" for r in runs.values())
            + "; over one core " + " / ".join(f"{r['speedup_over_one_core']:.2f}×" for r in runs.values()),
            "scales with cores",
        )
    )
    rows += rows_target_offset(result.get("target_offset", {}))
    return rows


def rows_target_offset(target_offset: dict) -> list[Row]:
    """``train``'s target-offset choice per hop, beside whole-song targets (``bench_training``)."""
    rows = []
    for hop, entry in target_offset.get("hops", {}).items():
        ours, base = entry["ours"], entry["baseline_whole_song_targets"]
        rows.append(
            (
                f"`train`'s target-offset choice, {entry['windows']:,} windows at a {hop}-s hop "
                f"({len(ours['scores'])} offsets)",
                f"{ours['seconds']:.1f} s (the rows' own targets)",
                f"whole-song targets {base['seconds']:.1f} s",
                f"{_x(entry['ratio_baseline_over_ours'])} faster",
                ("same choice" if entry["same_choice"] else "**other choice**")
                + f", scores within {entry['max_score_difference']:.1g}",
            )
        )
    return rows


def rows_simulate(result: dict) -> list[Row]:
    song, full = result["simulate_song"], result["nmedt_size"]
    return [
        (
            f"simulator, {full['what']}",
            f"{full['extrapolated_s']:.0f} s",
            f"target {full['target_s']:.0f} s",
            _x(full["ratio_extrapolated_over_target"]),
            "< 5 min" + _met(full.get("meets_target")),
        ),
        (
            f"simulator, {song['what']}",
            f"{song['median_s']:.3g} s",
            f"`scipy.io.savemat` of the same array {song['baseline_median_s']:.3g} s",
            _x(song["ratio_ours_over_baseline"]) + " the time",
            "",
        ),
    ]


def rows_gui(result: dict) -> list[Row]:
    rows = []
    for key in ("eeg_redraw_125hz", "eeg_redraw_1000hz"):
        r = result[key]
        rows.append(
            (
                f"EEG panel redraw, {r['n_chans']} ch × {r['window_s']:g} s at {r['sfreq_hz']:g} Hz",
                f"{_ms(r['median_ms'])} (p99 {_ms(r['p99_ms'])})",
                f"full-resolution `setData` {_ms(r['baseline_median_ms'])}",
                f"{_x(r['ratio_baseline_over_ours'])} faster",
                f"≤ {r['goal_ms']:g} ms" + _met(r.get("meets_goal")),
            )
        )
    latency = result["decode_latency_gui"]
    if "skipped" in latency:
        rows.append(
            (
                "decode latency with the dashboard open vs closed",
                f"not measured: {latency['skipped']}",
                "",
                "",
                "",
            )
        )
    else:
        alone, attached = (
            latency["alone"]["arrival_to_buffered"],
            latency["dashboard_attached"]["arrival_to_buffered"],
        )
        rows.append(
            (
                "decode latency with the dashboard attached vs alone (arrival → buffer)",
                f"{_ms(attached.get('p50_ms'))} p50, {_ms(attached['p99_ms'])} p99 attached",
                f"{_ms(alone.get('p50_ms'))} p50, {_ms(alone['p99_ms'])} p99 alone",
                _x(latency.get("ratio_p99_dashboard_attached_over_alone")) + " at p99",
                "≤ 1.1× and ≤ 15 ms p99" + _met(latency.get("meets_goals")),
            )
        )
    return rows


def rows_generative(result: dict) -> list[Row]:
    wave, diff = result["wavegan"], result["diffusion"]
    steps = diff["by_steps"]
    return [
        (
            "`wavegan` decode per window (ONNX CPU, 1 thread)",
            _ms(wave["decode_per_window"]["median_s"] * 1e3),
            f"`convnet` {_ms(wave['baseline_convnet']['median_s'] * 1e3)}",
            _x(wave["ratio_ours_over_baseline"]) + " the time",
            f"keeps up with a {wave['hop_s']:g}-s hop: {'yes' if wave['keeps_up'] else 'no'}",
        ),
        (
            "`diffusion`, 1-s segment by DDIM steps (torch)",
            " / ".join(f"{k} steps {_ms(v['median_s'] * 1e3)}" for k, v in steps.items())
            + f"; exported {diff['onnx_exported']['steps']}-step ONNX "
            + _ms(diff["onnx_exported"]["median_s"] * 1e3),
            f"1 step {_ms(diff['baseline_one_step']['median_s'] * 1e3)}",
            "",
            "",
        ),
    ]


def rows_latency(result: dict) -> list[Row]:
    rows = []
    base = (result.get("baseline") or {}).get("result")
    for label, entry in result["measured"].items():
        lat, est = entry["latency_ms"], entry["estimate_ms"]
        baseline = f"decoder's own estimate {_ms(est['p50'])} p50, {_ms(est['p99'])} p99"
        ratio = ""
        if base is not None:   # runs before the same-run baseline had none
            theirs = base["latency_ms"]
            baseline += (f"; the pre-issue-15 settings, same run: {_ms(theirs['p50'])} p50, "
                         f"{_ms(theirs['p99'])} p99")
            if lat["p50"] is not None and lat["p99"] is not None and theirs["p50"] and theirs["p99"]:
                ratio = f"{_x(lat['p50'] / theirs['p50'])} / {_x(lat['p99'] / theirs['p99'])}"
        rows.append(
            (
                f"EEG sample → audible sample through PulseAudio, hop {label}",
                f"{_ms(lat['p50'])} p50, {_ms(lat['p99'])} p99",
                baseline,
                ratio,
                "p50 ≤ 120 ms, p99 ≤ 160 ms" if label.startswith("default") else "",
            )
        )
    return rows


def rows_montage(result: dict) -> list[Row]:
    return [
        (
            f"missing-channel interpolation per window, {case}",
            f"{_ms(c['interpolate_ms']['p50'])} p50, {_ms(c['interpolate_ms']['p99'])} p99",
            f"plain channel copy {_ms(c['baseline_copy_ms']['p50'])}",
            _x(c["ratio_interpolate_over_copy_p50"]) + " the time",
            f"≤ {result['goal_ms']:g} ms" + _met(c["meets_goal"]),
        )
        for case, c in result["cases"].items()
    ]


def rows_calibration(result: dict) -> list[Row]:
    alone = result["pretrained_alone"]
    rows = []
    for minutes, entry in result["by_minutes"].items():
        tuned, scratch = entry["fine_tuned"], entry["from_scratch"]
        rows.append((
            f"adapting to a new listener with {minutes} calibration minutes (dynamic r on a test session)",
            f"fine-tuned {tuned['model']:.3f} (shuffled EEG {tuned['shuffled_eeg']:.3f})",
            f"from scratch {scratch['model']:.3f}; pretrained alone {alone['model']:.3f}; "
            f"global mean {tuned['global_mean']:.3f}",
            _x(tuned["model"] / scratch["model"]) if scratch["model"] > 0 else "n/a",
            "",
        ))
    return rows


def _rss_goal(goals: dict | None) -> str:
    """The fault soak's memory limit, where its result states one (runs before the verdict did not)."""
    limit = (goals or {}).get("rss_growth_ratio_last_over_first_max")
    return "" if limit is None else f" (RSS last/first ≤ {limit:g})"


def rows_faults(result: dict) -> list[Row]:
    faults, clean = result["soak_with_faults"], result["soak_without_faults"]
    return [(
        f"fault soak: {faults['stream_hours']:g} h at {faults['speed']:g}× with a stall, a loss and hostile "
        f"markers every {faults['every_min']:g} min (`{faults['model']}`)",
        f"{faults['samples_lost']:,} of {faults['samples_pushed']:,} samples lost after draining; "
        f"{faults['reconnects']} reconnects, {faults['bad_markers_counted']} bad markers counted; "
        f"RSS last/first {faults['rss_growth_ratio_last_over_first']}",
        f"same soak without faults: {clean['samples_lost']:,} lost",
        f"{faults['samples_lost_added_by_faults']:+,} samples added by the faults",
        "faults add no loss; flat memory" + _rss_goal(result.get("goals")) + _met(result.get("meets_goal")),
    )]


ROW_BUILDERS: dict[str, Callable[[dict], list[Row]]] = {
    "bench_runtime": rows_runtime,
    "bench_latency": rows_latency,
    "bench_inlet": rows_inlet,
    "bench_reconnect": rows_reconnect,
    "bench_montage": rows_montage,
    "bench_replay": rows_replay,
    "bench_soak": rows_soak,
    "bench_faults": rows_faults,
    "bench_training": rows_training,
    "bench_simulate": rows_simulate,
    "bench_gui": rows_gui,
    "bench_generative": rows_generative,
    "bench_calibration": rows_calibration,
}
"""Benchmark module name → its performance rows, in the README's order."""

TABLE_KEYS = {
    "bench_quality": "Decoding quality (bench_quality)",
    "bench_vocoder": "Vocoders (bench_vocoder)",
}
"""Benchmarks that render their own markdown table (``result["table"]``)."""


def benchmarks_by_name(bench: dict) -> dict[str, dict]:
    """``bench.json``'s entries keyed by the short module name (``bench_runtime``)."""
    return {name.rsplit(".", 1)[-1]: entry for name, entry in bench["benchmarks"].items()}


def performance_table(bench: dict) -> str:
    """The README's performance table from a ``bench.json`` content."""
    entries = benchmarks_by_name(bench)
    lines = ["| what | ours | baseline (same run) | ratio | goal |", "|---|---|---|---|---|"]
    for name, builder in ROW_BUILDERS.items():
        entry = entries.get(name)
        if entry is None:
            lines.append(f"| `{name}` | not in this bench.json (run `eegmusic bench --only {name}`) | | | |")
            continue
        if entry["status"] != "ok":
            lines.append(f"| `{name}` | failed: {entry['result']['error']} | | | |")
            continue
        try:
            rows = builder(entry["result"])
        except (KeyError, TypeError, ValueError) as error:  # a result whose layout changed: say which
            logger.warning("cannot render %s: %s: %s", name, type(error).__name__, error)
            lines.append(
                f"| `{name}` | not rendered ({type(error).__name__}: {error}); update "
                "benchmarks/readme_tables.py | | | |"
            )
            continue
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def header(bench: dict) -> str:
    """One line naming the machine, date, mode and load of the run."""
    machine = bench["machine"]
    flags = "".join(flag for flag, key in ((" --quick", "quick"), (" --seeds", "seeds")) if bench.get(key))
    flags += f" --jobs {bench['jobs']}" if bench.get("jobs", 1) > 1 else ""
    return (
        f"Measured by `eegmusic bench{flags}` on {bench['date']}: "
        f"{machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, "
        f"onnxruntime {machine['onnxruntime']}."
    )


def render(bench: dict) -> str:
    """Every README table from a ``bench.json`` content, as one markdown document."""
    entries = benchmarks_by_name(bench)
    parts = [header(bench), ""]
    for name, title in TABLE_KEYS.items():
        entry = entries.get(name)
        parts.append(f"### {title}\n")
        if entry is None or entry["status"] != "ok" or "table" not in entry["result"]:
            reason = "not run" if entry is None else entry["result"].get("error", "no table in its result")
            parts.append(f"`{name}`: {reason}.\n")
        else:
            parts.append(entry["result"]["table"].rstrip() + "\n")
    parts += ["### Performance\n", performance_table(bench), ""]
    return "\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Print the README's results and performance tables from eegmusic bench's JSON.",
        epilog="Example: eegmusic bench --out bench.json && "
        "python -m eegmusic.benchmarks.readme_tables bench.json > tables.md",
    )
    parser.add_argument("bench_json", help="the file written by eegmusic bench --out")
    parser.add_argument("--out", help="write the markdown here instead of standard output")
    parser.add_argument("--figures", metavar="DIR",
                        help="also draw the figures of the benchmarks that have one into DIR, as "
                        "DIR/bench-NAME.png (the README's docs/bench-quality.png comes from --figures docs; "
                        "a --seeds run's figure is DIR/bench-spread.png)")
    args = parser.parse_args(argv)
    path = Path(args.bench_json)
    try:
        bench = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        print(
            f"readme_tables: cannot read {path} ({type(error).__name__}); "
            f"run eegmusic bench --out {path} first",
            file=sys.stderr,
        )
        return 2
    if (not isinstance(bench, dict) or not isinstance(bench.get("benchmarks"), dict)
            or "machine" not in bench):
        print(
            f"readme_tables: {path} is not eegmusic bench output (no benchmarks/machine); "
            "run eegmusic bench --out FILE",
            file=sys.stderr,
        )
        return 2
    # the outputs checked before anything is drawn or written: a missing folder or a file in the way was a
    # traceback after the rendering
    if args.out and not Path(args.out).expanduser().resolve().parent.is_dir():
        print(f"readme_tables: --out {args.out}: its folder does not exist; create it or pass another --out",
              file=sys.stderr)
        return 2
    if args.figures and Path(args.figures).exists() and not Path(args.figures).is_dir():
        print(f"readme_tables: --figures {args.figures} is a file, not a folder; pass a folder",
              file=sys.stderr)
        return 2
    text = render(bench)
    failed = []
    if args.figures:
        from eegmusic.benchmarks.cli_bench import draw_figures

        Path(args.figures).mkdir(parents=True, exist_ok=True)
        # named as `eegmusic bench --out FOLDER/bench.json` names them, whatever the JSON is called
        drawn = draw_figures(bench["benchmarks"], Path(args.figures) / "bench.json",
                             seeds=bool(bench.get("seeds")))
        for figure, error in drawn:
            if error is None:
                print(f"readme_tables: drew {figure}", file=sys.stderr)
            else:
                failed.append(f"readme_tables: {error}")
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        print(text)
    # the figures are what --figures asked for: one not drawn (its old file kept) fails the command, or a
    # README rebuilt by a script would go on with a stale figure; the tables are written all the same
    for line in failed:
        print(line, file=sys.stderr)
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
