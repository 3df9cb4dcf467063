"""nnconvert's performance, side by side with the tools and limits it is measured against.

    python benchmarks/run.py            # the full run (about 10 minutes on 2 cores), writes the plot
    python benchmarks/run.py --quick    # fewer repetitions, no json-list file, no plot (a few minutes)
    python benchmarks/run.py --markdown docs/benchmarks_table.md   # also write the table as Markdown

Every measurement of a row runs in this one invocation, next to its baseline,
and the row prints the ratio and whether the target of issue 6 holds. Times
are the best of N runs (the machine's cores are shared; the minimum is the
least disturbed run); batch-1 latencies are medians. These are measurements,
not tests: nothing fails when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _common import Row, large_mlp, megabytes, seconds, small_mlp, weight_arrays, weights_nbytes  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


# -- sections ------------------------------------------------------------------------


def conversion_rows(small: tuple[Any, np.ndarray], large: tuple[Any, np.ndarray], workdir: Path, quick: bool) -> list[Row]:
    from _conversion import time_conversions

    rows = []
    times = time_conversions(*small, workdir, 15 if quick else 40)
    speedup = times["skl2onnx"] / times["nnconvert"]
    rows.append(Row("sklearn -> ONNX", "small MLP (iris, 4-10-3): skl2onnx / nnconvert", seconds(times["nnconvert"]),
                    seconds(times["skl2onnx"]), speedup, ">= 10", speedup >= 10))
    times = time_conversions(*large, workdir, 4 if quick else 8, skl2onnx_repeat=1 if quick else 2, with_lower_bound=True)
    speedup = times["skl2onnx"] / times["nnconvert"]
    rows.append(Row("sklearn -> ONNX", "large MLP (784-4096x3-10, 36.8M weights): skl2onnx / nnconvert",
                    seconds(times["nnconvert"]), seconds(times["skl2onnx"]), speedup, ">= 10", speedup >= 10,
                    f"files {megabytes(times['nnconvert_bytes'])} / {megabytes(times['skl2onnx_bytes'])}"))
    bound = times["nnconvert"] / times["lower_bound"]
    rows.append(Row("sklearn -> ONNX", "large MLP: nnconvert / lower bound (cast to float32, tobytes, write, fsync)",
                    seconds(times["nnconvert"]), seconds(times["lower_bound"]), bound, "<= 2", bound <= 2))
    return rows


def memory_rows(large: tuple[Any, np.ndarray], workdir: Path) -> list[Row]:
    from _memory import peak_memory

    rows = []
    source = weights_nbytes(large[0])
    for tool in ("nnconvert", "skl2onnx", "lower_bound"):
        figures = peak_memory(tool, workdir / f"memory_{tool}.onnx")
        output = figures["output_bytes"]
        used = source + figures["extra_bytes"]
        allowed = source + 2 * output
        note = f"conversion adds {megabytes(figures['extra_bytes'])} over the built model; output {megabytes(output)}"
        if not figures["reset"]:
            note += "; peak not resettable here, model building included"
        is_target = tool == "nnconvert"
        rows.append(Row("peak memory (child process)",
                        f"large, {tool}: (source weights + conversion) / (source weights + 2 x output)",
                        megabytes(used), megabytes(allowed), used / allowed, "<= 1" if is_target else "",
                        used <= allowed if is_target else None, note))
    return rows


def runtime_rows(name: str, model: tuple[Any, np.ndarray], workdir: Path, latency_runs: int, throughput_runs: int) -> list[Row]:
    import _runtime
    from _conversion import nnconvert_to_onnx, skl2onnx_to_onnx

    estimator, X = model
    ours, theirs = workdir / f"runtime_{name}_nnconvert.onnx", workdir / f"runtime_{name}_skl2onnx.onnx"
    nnconvert_to_onnx(estimator, ours)
    skl2onnx_to_onnx(estimator, X, theirs)
    r = _runtime.measure(estimator, X, ours, theirs, latency_runs=latency_runs, throughput_runs=throughput_runs)
    section = "onnxruntime (1 thread)"
    latency = r["nnconvert_latency"] / r["skl2onnx_latency"]
    throughput = r["nnconvert_throughput"] / r["skl2onnx_throughput"]

    def rate(value: float) -> str:
        return f"{value:,.0f} rows/s"

    return [
        Row(section, f"{name}: batch-1 latency, ours / skl2onnx's ONNX (median)", seconds(r["nnconvert_latency"]),
            seconds(r["skl2onnx_latency"]), latency, "<= 1.0", latency <= 1.0),
        Row(section, f"{name}: batch-1024 throughput, ours / skl2onnx's ONNX", rate(r["nnconvert_throughput"]),
            rate(r["skl2onnx_throughput"]), throughput, ">= 1.0", throughput >= 1.0),
        Row(section, f"{name}: batch-1 latency, ours / sklearn predict_proba", seconds(r["nnconvert_latency"]),
            seconds(r["sklearn_latency"]), r["nnconvert_latency"] / r["sklearn_latency"], "< 1 (well ahead)",
            r["nnconvert_latency"] < r["sklearn_latency"]),
        Row(section, f"{name}: batch-1024 throughput, ours / sklearn predict_proba", rate(r["nnconvert_throughput"]),
            rate(r["sklearn_throughput"]), r["nnconvert_throughput"] / r["sklearn_throughput"], "", None),
    ]


def format_rows(large: tuple[Any, np.ndarray], workdir: Path, quick: bool) -> list[Row]:
    import _formats_io

    import nnconvert

    model = nnconvert.from_sklearn(large[0])
    results = _formats_io.measure(model, weight_arrays(large[0]), workdir, 4 if quick else 7, json_list=not quick)
    rows = []
    cases = [("hdf5", "raw h5py", 1.5), ("json base64", "raw numpy", 1.5), ("json base64", "raw base64", None),
             ("json list", "raw numpy", None)]
    for name, baseline, target in cases:
        if name not in results:
            rows.append(Row("large model files", f"{name}: skipped with --quick (minutes for 37M decimals)", "", "", None))
            continue
        for operation in ("write", "read"):
            ours, theirs = results[name][operation], results[baseline][operation]
            ratio = ours / theirs
            rows.append(Row("large model files", f"{name} {operation} / {baseline} {operation} (float64 arrays)",
                            seconds(ours), seconds(theirs), ratio, f"<= {target}" if target else "",
                            ratio <= target if target else None,
                            f"{megabytes(results[name]['bytes'])} vs {megabytes(results[baseline]['bytes'])}"))
    return rows


def startup_rows(small: tuple[Any, np.ndarray], workdir: Path, quick: bool) -> list[Row]:
    import _startup

    import nnconvert

    repeat = 5 if quick else 15
    source, target = workdir / "small.json", workdir / "small.onnx"
    nnconvert.save(nnconvert.from_sklearn(small[0]), source, format="json")
    script = _startup.console_script()
    python = _startup.python_baseline(repeat)
    help_time = _startup.best_wall_time([*script, "--help"], repeat)
    convert_time = _startup.best_wall_time([*script, "convert", str(source), str(target)], repeat)
    exit_code, heavy = _startup.heavy_imports_of_json_to_onnx(source, target)
    imports_sklearn = "sklearn" in heavy.split(",")
    return [
        Row("command line", "nnconvert --help (wall time, python start-up included)", seconds(help_time),
            seconds(python), help_time / python, "< 0.3 s", help_time < 0.3, "baseline: python -c pass"),
        Row("command line", "nnconvert convert small.json small.onnx", seconds(convert_time), seconds(python),
            convert_time / python, "", None, "baseline: python -c pass"),
        Row("command line", "json -> onnx imports scikit-learn?", "no" if not imports_sklearn else "yes", "", None,
            "no", not imports_sklearn and exit_code == 0, f"exit {exit_code}; heavy modules imported: {heavy or 'none'}"),
    ]


def verify_rows(quick: bool) -> list[Row]:
    script = HERE / "verify_overhead.py"
    if not script.exists():
        return [Row("verify", "verify on 100,000 rows: skipped (benchmarks/verify_overhead.py not there yet)", "", "", None)]
    command = [sys.executable, str(script), "--rows", "100000", "--repeat", "1" if quick else "3"]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    found = {key: re.search(pattern, completed.stdout) for key, pattern in (
        ("models", r"both models\s+([\d.]+) s"), ("hashed", r"verify \+ summary\(\)\s+([\d.]+) s"),
        ("console", r"no hash \+ summary\(\)\s+([\d.]+) s"), ("passed", r"passed=(\w+)"))}
    if completed.returncode != 0 or not all(found.values()):
        return [Row("verify", "verify on 100,000 rows: verify_overhead.py failed or changed its output", "", "", None,
                    note=(completed.stderr or completed.stdout)[-200:].replace("\n", " "))]
    models, hashed, console = (float(found[key].group(1)) for key in ("models", "hashed", "console"))
    note = f"passed={found['passed'].group(1)}; by verify_overhead.py"
    return [
        Row("verify", "verify + summary on 100,000 rows (784-128-10), no input hash (the console run) / the two models' "
            "own inference", seconds(console), seconds(models), console / models, "<= 1.25", console / models <= 1.25, note),
        Row("verify", "the same with the inputs' sha256 (written with --report-json) / the two models' own inference",
            seconds(hashed), seconds(models), hashed / models, "", None, note),
    ]


# -- output -----------------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = " ".join(f"{value:.2f}" for value in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    versions = []
    for module in ("numpy", "sklearn", "onnx", "onnxruntime", "skl2onnx", "h5py"):
        try:
            versions.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            versions.append(f"{module} missing")
    return (f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, Python {platform.python_version()}; "
            f"load average at start {load}; " + ", ".join(versions))


def _holds(row: Row) -> str:
    return "" if row.holds is None else ("yes" if row.holds else "NO")


def _ratio(row: Row) -> str:
    return "" if row.ratio is None else f"{row.ratio:.2f}"


def print_table(rows: list[Row]) -> None:
    section = None
    for row in rows:
        if row.section != section:
            section = row.section
            print(f"\n== {section}")
        print(f"  {row.what}")
        print(f"      ours {row.ours:>16}   baseline {row.baseline:>16}   ratio {_ratio(row):>7}   "
              f"target {row.target or '-':>16}   holds {_holds(row) or '-'}" + (f"   ({row.note})" if row.note else ""))


def markdown_table(rows: list[Row]) -> str:
    lines = ["| section | measurement (ratio = first / second) | ours | baseline | ratio | target | holds | note |",
             "|---|---|---:|---:|---:|---|---|---|"]
    for row in rows:
        cells = [row.section, row.what, row.ours, row.baseline, _ratio(row), row.target, _holds(row), row.note]
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


# -- main -------------------------------------------------------------------------------


def _timed(label: str, function: Callable[[], list[Row]]) -> list[Row]:
    start = time.perf_counter()
    print(f"[{label}] ...", file=sys.stderr, flush=True)
    rows = function()
    print(f"[{label}] done in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="nnconvert benchmarks (issue 6)")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, no json-list file, no plot")
    parser.add_argument("--markdown", type=Path, help="also write the results table as Markdown to this file")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "benchmarks_conversion_time.png",
                        help="where the conversion-time plot goes (full run only)")
    parser.add_argument("--no-plot", action="store_true", help="skip the conversion-time plot")
    args = parser.parse_args(argv)
    description = machine()
    print(f"machine: {description}")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nnconvert-bench-") as folder:
        workdir = Path(folder)
        from _conversion import time_conversions

        small = small_mlp()
        time_conversions(*small, workdir, 1)  # warm-up: imports are not what is measured
        large = large_mlp()
        rows = _timed("conversion", lambda: conversion_rows(small, large, workdir, args.quick))
        rows += _timed("memory", lambda: memory_rows(large, workdir))
        rows += _timed("runtime", lambda: runtime_rows("small", small, workdir, 2000 if args.quick else 10000, 200))
        if not args.quick:
            rows += _timed("runtime large", lambda: runtime_rows("large", large, workdir, 200, 6))
        rows += _timed("files", lambda: format_rows(large, workdir, args.quick))
        rows += _timed("command line", lambda: startup_rows(small, workdir, args.quick))
        rows += _timed("verify", lambda: verify_rows(args.quick))
        if not args.quick and not args.no_plot:
            import plot_conversion

            print("[plot] conversion time against model size", file=sys.stderr, flush=True)
            plot_conversion.plot(plot_conversion.measure_sizes(workdir), args.plot)
            print(f"wrote {args.plot}")
    print_table(rows)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    if args.markdown:
        args.markdown.write_text(f"Machine: {description}\n\n" + markdown_table(rows))
        print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
