"""A mutation fuzzer for nnconvert's readers.

Seeds are valid files of every readable format: the ones nnconvert writes
(tests/make_bad_inputs.py), plus the real producers' files committed under
tests/fixtures (skl2onnx, torch.onnx, tf2onnx, Keras). Each case mutates one
seed (bit flips, interesting bytes, truncation, splices with another seed,
chunk deletion/duplication, random insertions; zip archives also get their
members mutated and re-zipped, so the damage reaches the JSON and HDF5
inside) and converts it to JSON. A case passes when it converts, or fails
with an nnconvert error that maps to exit code 3, names the file, is not
api.load's generic "cannot read the file: <ExcType>" wrapper, and leaves no
output behind. Anything else is a failure: another exception, a hang
(``--timeout`` seconds), or the interpreter dying (a crash in a C library).

Cases run in a worker process; if it dies, the case it was on is recorded
as a crash and a new worker continues after it. Failing inputs are copied to
``--keep`` for reproduction. Pickles are fuzzed without trust: the gate and
the sniffers are what is exercised, never unpickling random bytes.

    python tests/fuzz.py --cases 100000 --seed 7 --keep /tmp/fuzz-failures
"""

from __future__ import annotations

import argparse
import io
import json
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
GENERIC_WRAPPER = re.compile(r"cannot read the file: [A-Za-z_][\w.]*: ")
INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0xFE, 0x20, 0x22, 0x5B, 0x7B, 0x30, 0x39)
MEMORY_LIMIT = 3 * 2**30  # address space of a worker: an allocation following a declared size fails fast


@dataclass
class Seed:
    format: str
    path: Path
    data: bytes


def make_seeds(directory: Path) -> list[Seed]:
    """Valid files of every readable format: nnconvert's and the committed real producers' files."""
    sys.path.insert(0, str(HERE))
    import make_bad_inputs
    import numpy as np

    seeds = []
    written = make_bad_inputs.write_valid_files(directory / "tiny")
    wide = make_bad_inputs.tiny_model(np.float32, classes=("setosa", "versicolor", "virginica"))
    written_str = make_bad_inputs.write_valid_files(directory / "str", wide)
    for files in (written, written_str):
        seeds += [Seed(fmt, path, path.read_bytes()) for fmt, path in files.items()]
    fixtures = HERE / "fixtures"
    for path in sorted(fixtures.glob("onnx/*.onnx"))[:6]:
        seeds.append(Seed("onnx", path, path.read_bytes()))
    for path in sorted(fixtures.glob("keras/*.h5"))[:3]:
        seeds.append(Seed("keras-h5", path, path.read_bytes()))
    for path in sorted(fixtures.glob("keras/*.keras"))[:3]:
        seeds.append(Seed("keras", path, path.read_bytes()))
    return seeds


# -- mutations -----------------------------------------------------------------------


def _bit_flips(data: bytearray, rng: random.Random, seeds: list[Seed]) -> None:
    for _ in range(rng.choice((1, 1, 2, 4, 8, 32))):
        position = rng.randrange(len(data))
        data[position] ^= 1 << rng.randrange(8)


def _interesting_bytes(data: bytearray, rng: random.Random, seeds: list[Seed]) -> None:
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] = rng.choice(INTERESTING)


def _truncate(data: bytearray, rng: random.Random, seeds: list[Seed]) -> None:
    del data[rng.randrange(len(data)) :]


def _splice(data: bytearray, rng: random.Random, seeds: list[Seed]) -> None:
    other = rng.choice(seeds).data
    cut, other_cut = rng.randrange(len(data)), rng.randrange(len(other))
    data[cut:] = other[other_cut:]


def _delete_chunk(data: bytearray, rng: random.Random, seeds: list[Seed]) -> None:
    start = rng.randrange(len(data))
    del data[start : start + rng.randint(1, 256)]


def _duplicate_chunk(data: bytearray, rng: random.Random, seeds: list[Seed]) -> None:
    start = rng.randrange(len(data))
    chunk = data[start : start + rng.randint(1, 256)]
    at = rng.randrange(len(data))
    data[at:at] = chunk


def _insert_random(data: bytearray, rng: random.Random, seeds: list[Seed]) -> None:
    at = rng.randrange(len(data) + 1)
    data[at:at] = rng.randbytes(rng.randint(1, 64))


def _set_number(data: bytearray, rng: random.Random, seeds: list[Seed]) -> None:
    """Overwrite 4 or 8 bytes with a huge, negative or zero integer: sizes, offsets, dims."""
    width = rng.choice((4, 8))
    value = rng.choice((0, 1, 2**31 - 1, 2**32 - 1, 2**63 - 1, 10**12)) if width == 8 else rng.choice((0, 1, 2**31 - 1, 2**32 - 1))
    at = rng.randrange(max(1, len(data) - width))
    data[at : at + width] = value.to_bytes(width, rng.choice(("little", "big")))


MUTATIONS = (_bit_flips, _interesting_bytes, _truncate, _splice, _delete_chunk, _duplicate_chunk, _insert_random, _set_number)


def _mutate_bytes(data: bytes, rng: random.Random, seeds: list[Seed]) -> tuple[bytes, str]:
    buffer = bytearray(data or b"\0")
    names = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if not buffer:
            break
        mutation = rng.choice(MUTATIONS)
        mutation(buffer, rng, seeds)
        names.append(mutation.__name__.lstrip("_"))
    return bytes(buffer), "+".join(names)


def _mutate_zip_member(data: bytes, rng: random.Random, seeds: list[Seed]) -> tuple[bytes, str] | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    except Exception:  # noqa: BLE001 - not a readable zip: mutate the bytes instead
        return None
    if not members:
        return None
    index = rng.randrange(len(members))
    name, content = members[index]
    mutated, how = _mutate_bytes(content, rng, seeds)
    members[index] = (name, mutated)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for member, payload in members:
            archive.writestr(member, payload)
    return out.getvalue(), f"zip-member[{name}]:{how}"


def mutate(seed: Seed, rng: random.Random, seeds: list[Seed]) -> tuple[bytes, str]:
    """One mutated variant of ``seed`` and a description of what was done."""
    if seed.data[:4] == b"PK\x03\x04" and rng.random() < 0.6:
        result = _mutate_zip_member(seed.data, rng, seeds)
        if result is not None:
            return result
    return _mutate_bytes(seed.data, rng, seeds)


# -- running one case ------------------------------------------------------------------


class _Timeout(BaseException):
    pass


def _on_alarm(signum, frame):
    raise _Timeout()


def check_case(path: Path, fmt: str | None, out_dir: Path, timeout: float, isolate: bool = True) -> str | None:
    """None when nnconvert handled the file as it should; otherwise what went wrong.

    With ``isolate`` (the default), files libhdf5 may read are read as the
    command line reads them: in a child process killed after half the
    case's ``timeout``, so that a spin inside libhdf5 becomes a ReadError.
    """
    import warnings

    import nnconvert
    from nnconvert.api import reads_with_libhdf5
    from nnconvert.errors import NnconvertError, exit_code_for

    target = out_dir / "out.json"
    read_timeout = timeout / 2 if isolate and reads_with_libhdf5(path, fmt) else None
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nnconvert.convert(path, target, from_format=fmt, timeout=read_timeout)
        problem = None
    except _Timeout:
        return f"hang: no answer within {timeout} s"
    except NnconvertError as exc:
        message = str(exc)
        if exit_code_for(exc) != 3:
            problem = f"exit code {exit_code_for(exc)} for {type(exc).__name__}: {message[:300]}"
        elif GENERIC_WRAPPER.search(message) or "declares more data than fits in memory" in message:
            problem = f"generic wrapper: {message[:300]}"
        elif str(path) not in message:
            problem = f"message does not name the file: {message[:300]}"
        elif any(out_dir.iterdir()):
            problem = f"failed but left {sorted(p.name for p in out_dir.iterdir())}"
        else:
            problem = None
    except Exception as exc:  # noqa: BLE001 - that is what the fuzzer looks for
        problem = f"bare {type(exc).__name__}: {str(exc)[:300]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    for leftover in out_dir.iterdir():
        leftover.unlink()
    return problem


def _case_rng(seed: int, index: int) -> random.Random:
    return random.Random(f"{seed}:{index}")


def worker(args: argparse.Namespace) -> int:
    """Run cases ``start..cases-1``; failures to ``workdir/failures.jsonl``, the current case in ``workdir/progress``."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    signal.signal(signal.SIGALRM, _on_alarm)
    workdir = Path(args.workdir)
    seeds = make_seeds(workdir / "seeds")
    out_dir = workdir / "out"
    out_dir.mkdir(exist_ok=True)
    progress = workdir / "progress"
    for index in range(args.start, args.cases):
        rng = _case_rng(args.seed, index)
        seed = rng.choice(seeds)
        data, how = mutate(seed, rng, seeds)
        case = workdir / f"case{seed.path.suffix}"
        case.write_bytes(data)
        fmt = seed.format if rng.random() < 0.5 else None
        progress.write_text(json.dumps({"index": index, "seed": str(seed.path), "how": how, "format": fmt}))
        problem = check_case(case, fmt, out_dir, args.timeout, isolate=not args.no_isolation)
        if problem is not None:
            with open(workdir / "failures.jsonl", "a") as failures:
                failures.write(json.dumps({"index": index, "seed": seed.path.name, "how": how, "format": fmt, "problem": problem}) + "\n")
            if args.keep:
                Path(args.keep).mkdir(parents=True, exist_ok=True)
                shutil.copy(case, Path(args.keep) / f"case{index}{seed.path.suffix}")
    # The watcher stops timing here: interpreter shutdown on a loaded machine is no hang of any case.
    progress.write_text(json.dumps({"finished": True}))
    return 0


def _watch(process: subprocess.Popen, progress_file: Path, timeout: float) -> bool:
    """Wait for the worker; kill it and return True when one case runs past ``timeout`` (a hang in C code)."""
    last, since = None, time.monotonic()
    while process.poll() is None:
        time.sleep(0.2)
        current = progress_file.read_text() if progress_file.exists() else None
        if current != last:
            last, since = current, time.monotonic()
        elif current is not None and '"finished"' not in current and time.monotonic() - since > timeout:
            # start-up (imports, seeds) and shutdown after the last case are not timed
            process.kill()
            process.wait()
            return True
    return False


def run(cases: int, seed: int, timeout: float = 10.0, keep: str | None = None, isolate: bool = True) -> list[dict]:
    """Run ``cases`` cases in worker processes; every failure, crashes and hangs included.

    ``isolate=False`` reads HDF5 files in the worker itself, as ``nnconvert.load``
    does by default: libhdf5's own hangs then show up as hangs.
    """
    failures: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="nnconvert-fuzz-") as workdir:
        start = 0
        progress_file, failure_file = Path(workdir) / "progress", Path(workdir) / "failures.jsonl"
        while start < cases:
            command = [sys.executable, __file__, "--worker", "--cases", str(cases), "--seed", str(seed), "--start", str(start),
                       "--timeout", str(timeout), "--workdir", workdir] + (["--keep", keep] if keep else []) + (
                       [] if isolate else ["--no-isolation"])
            with open(Path(workdir) / "stderr", "w+") as stderr:
                process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
                hung = _watch(process, progress_file, timeout + 1)
                stderr.seek(0)
                errors = stderr.read()
            if process.returncode == 0 and not hung:
                break
            if not progress_file.exists():
                raise RuntimeError(f"the fuzz worker failed before its first case:\n{errors[-3000:]}")
            progress = json.loads(progress_file.read_text())
            if progress.get("finished"):
                failures.append({"index": None, "problem": f"crash: the worker died on exit ({process.returncode}): {errors[-500:]}"})
                break
            problem = "hang: killed after no answer within the timeout (stuck in C code)" if hung else (
                f"crash: the interpreter died (exit {process.returncode}): {errors[-500:]}")
            failures.append({**progress, "problem": problem})
            if keep:
                Path(keep).mkdir(parents=True, exist_ok=True)
                for case in Path(workdir).glob("case.*"):
                    if case.suffix == Path(progress["seed"]).suffix:
                        shutil.copy(case, Path(keep) / f"{problem.split(':')[0]}{progress['index']}{case.suffix}")
            start = progress["index"] + 1
            progress_file.unlink()
        if failure_file.exists():
            failures += [json.loads(line) for line in failure_file.read_text().splitlines()]
    return sorted(failures, key=lambda failure: failure["index"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds before a case counts as a hang")
    parser.add_argument("--keep", help="copy failing inputs into this folder")
    parser.add_argument("--no-isolation", action="store_true",
                        help="read HDF5-based files in the worker (no child process, no read timeout): shows libhdf5's own hangs")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    started = time.perf_counter()
    failures = run(args.cases, args.seed, args.timeout, args.keep, isolate=not args.no_isolation)
    for failure in failures:
        print(json.dumps(failure))
    print(f"{args.cases} cases, {len(failures)} failures, {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
