"""Conversion time against model size, nnconvert and skl2onnx: docs/benchmarks_conversion_time.png.

    python benchmarks/plot_conversion.py [--out PATH]

Run by ``benchmarks/run.py`` (not with ``--quick``). The models are
``n -> n -> n -> n -> 10`` MLPClassifiers with seeded random weights, ``n``
chosen so that the weight counts span 10^3 to 4x10^7.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import n_weights, random_mlp  # noqa: E402
from _conversion import time_conversions  # noqa: E402

TARGET_SIZES = (1e3, 1e4, 1e5, 1e6, 3e6, 1e7, 2e7, 4e7)
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks_conversion_time.png"


def width_for(weights: float, n_classes: int = 10) -> int:
    """n with 3n^2 + 10n + (3n + 10) biases closest to ``weights``."""
    a, b = 3.0, 3.0 + n_classes + 3
    return max(1, round((-b + math.sqrt(b * b + 4 * a * weights)) / (2 * a)))


def measure_sizes(workdir: Path, sizes: tuple[float, ...] = TARGET_SIZES) -> list[dict[str, float]]:
    """One row per size: weights, nnconvert seconds, skl2onnx seconds (best of a few)."""
    rows = []
    for target in sizes:
        width = width_for(target)
        estimator, X = random_mlp(width, (width, width, width), 10)
        big = target >= 1e7
        times = time_conversions(estimator, X, workdir, 3 if big else 7, skl2onnx_repeat=1 if big else 3)
        rows.append({"weights": n_weights(estimator), "nnconvert": times["nnconvert"], "skl2onnx": times["skl2onnx"]})
        print(f"  {rows[-1]['weights']:>10,d} weights: nnconvert {times['nnconvert']:.4f} s, "
              f"skl2onnx {times['skl2onnx']:.4f} s", flush=True)
        del estimator
    return rows


def plot(rows: list[dict[str, float]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weights = [row["weights"] for row in rows]
    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    axes.loglog(weights, [row["skl2onnx"] for row in rows], "o-", label="skl2onnx.to_onnx + serialise + write")
    axes.loglog(weights, [row["nnconvert"] for row in rows], "s-", label="nnconvert.convert (atomic, fsynced)")
    axes.set_xlabel("weights in the model")
    axes.set_ylabel("conversion time to an .onnx file (s, best of N)")
    axes.set_title("scikit-learn MLPClassifier -> ONNX")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        from _common import small_mlp

        estimator, X = small_mlp()
        time_conversions(estimator, X, Path(folder), 1)  # warm imports
        plot(measure_sizes(Path(folder)), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
