"""Batch conversion of a model registry: ``nnconvert convert --manifest jobs.csv|jobs.jsonl``.

One job per line: ``source``, ``destination`` and ``options`` (a JSON object:
``from``, ``to``, ``trust``, ``timeout``, ``task``, ``classes`` and the writer's
options such as ``dtype`` or ``opset``). Relative paths are taken from the
manifest's folder. Jobs run on a pool of worker processes (or as a Spark job);
each ends in a row of the results file (status, exit code, message, output
sha256, seconds), which is replaced atomically as jobs finish. A job whose
source bytes, options and output are those of an earlier successful row is
skipped. A failing job, even one that kills its worker process, never stops
the others.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ReadError, UsageError

__all__ = ["Job", "read_manifest", "run_manifest", "run_job", "RESULT_COLUMNS", "default_results_path"]

RESULT_COLUMNS = ("line", "source", "destination", "status", "exit_code", "message", "output_sha256", "seconds",
                  "source_sha256", "options_sha256")  # fmt: skip
_READ_KEYS = ("task", "classes")
SAVE_EVERY_S = 2.0  # the results file is rewritten at most this often while jobs run (and once at the end)


@dataclass(frozen=True)
class Job:
    """One line of the manifest."""

    line: int
    source: str
    destination: str
    options: dict[str, Any]

    def fingerprint(self) -> str:
        """What, besides the source's bytes, decides the output: the options and nnconvert's version."""
        from . import __version__

        text = json.dumps({"options": self.options, "nnconvert": __version__}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


def read_manifest(path: str | Path) -> list[Job]:
    """The jobs of a ``.csv`` (header ``source,destination[,options]``) or ``.jsonl`` manifest.

    Raises:
        ReadError: unreadable file, bad line (named by number), or two jobs writing one destination.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReadError(f"cannot read the manifest: {exc}", path=path) from exc
    rows = _jsonl_rows(text, path) if path.suffix.lower() in (".jsonl", ".ndjson") else _csv_rows(text, path)
    jobs: list[Job] = []
    seen: dict[str, int] = {}
    for line, row in rows:
        job = _job(line, row, path)
        if job.destination in seen:
            raise ReadError(f"line {line}: destination {job.destination} is also written by line {seen[job.destination]}", path=path)
        seen[job.destination] = line
        jobs.append(job)
    return jobs


def _csv_rows(text: str, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or not {"source", "destination"} <= set(reader.fieldnames):
        raise ReadError("a CSV manifest needs a header line with the columns source,destination[,options]", path=path)
    for row in reader:
        if any((value or "").strip() for value in row.values()):
            yield reader.line_num, row


def _jsonl_rows(text: str, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ReadError(f"line {number}: not JSON: {exc.msg}", path=path) from None
        if not isinstance(row, dict):
            raise ReadError(f"line {number}: expected a JSON object with source, destination, options", path=path)
        yield number, row


def _job(line: int, row: dict[str, Any], path: Path) -> Job:
    source, destination = row.get("source"), row.get("destination")
    if not isinstance(source, str) or not source.strip() or not isinstance(destination, str) or not destination.strip():
        raise ReadError(f"line {line}: source and destination must be non-empty paths", path=path)
    options = row.get("options") or {}
    if isinstance(options, str):
        try:
            options = json.loads(options)
        except json.JSONDecodeError as exc:
            raise ReadError(f"line {line}: options must be a JSON object: {exc.msg}", path=path) from None
    if not isinstance(options, dict):
        raise ReadError(f"line {line}: options must be a JSON object, got {type(options).__name__}", path=path)
    base = path.parent
    return Job(line, str(base / source.strip()), str(base / destination.strip()), options)


def default_results_path(manifest: str | Path) -> Path:
    """``jobs.csv`` -> ``jobs.results.csv`` (``.jsonl`` -> ``.results.jsonl``), beside the manifest."""
    manifest = Path(manifest)
    suffix = ".jsonl" if manifest.suffix.lower() in (".jsonl", ".ndjson") else ".csv"
    return manifest.with_name(manifest.stem + ".results" + suffix)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_job(job: Job) -> dict[str, Any]:
    """Convert one job; never raises: the outcome is a results row."""
    from .errors import exit_code_for

    started = time.perf_counter()
    row: dict[str, Any] = {"line": job.line, "source": job.source, "destination": job.destination,
                           "options_sha256": job.fingerprint(), "output_sha256": "", "source_sha256": ""}  # fmt: skip
    try:
        row["source_sha256"] = file_sha256(job.source) if Path(job.source).is_file() else ""
        _convert(job)
        row.update(status="ok", exit_code=0, message="", output_sha256=file_sha256(job.destination))
    except Exception as exc:  # noqa: BLE001 - every failure becomes the job's row, as the command line words it
        from .errors import NnconvertError

        code = exit_code_for(exc) if isinstance(exc, NnconvertError) else 3
        message = str(exc) if isinstance(exc, (NnconvertError, OSError)) else f"unexpected {type(exc).__name__}: {exc}"
        row.update(status="failed", exit_code=code, message=message)
    row["seconds"] = round(time.perf_counter() - started, 6)
    return row


def _convert(job: Job) -> None:
    from .api import convert, default_read_timeout

    options = dict(job.options)
    from_format, to_format = options.pop("from", None), options.pop("to", None)
    trust = bool(options.pop("trust", False))
    timeout = options.pop("timeout", None)
    if timeout is None:
        timeout = default_read_timeout(Path(job.source), from_format)
    read_options = {key: options.pop(key) for key in _READ_KEYS if key in options}
    Path(job.destination).parent.mkdir(parents=True, exist_ok=True)
    convert(job.source, job.destination, from_format=from_format, to_format=to_format, trust=trust,
            timeout=timeout or None, read_options=read_options, **options)  # fmt: skip


def read_results(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The rows of an earlier results file by (source, destination); empty when there is none."""
    if not path.is_file():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            rows = list(csv.DictReader(io.StringIO(text)))
    except (OSError, ValueError) as exc:
        raise ReadError(f"cannot read the earlier results: {exc}", path=path) from exc
    return {(row.get("source", ""), row.get("destination", "")): row for row in rows}


def up_to_date(job: Job, earlier: dict[str, Any] | None) -> dict[str, Any] | None:
    """The skipped job's row when its output is the one an earlier successful run made from the same bytes."""
    if earlier is None or earlier.get("status") not in ("ok", "skipped") or not earlier.get("output_sha256"):
        return None
    if earlier.get("options_sha256") != job.fingerprint() or not Path(job.destination).is_file() or not Path(job.source).is_file():
        return None
    source_sha = file_sha256(job.source)
    if source_sha != earlier.get("source_sha256") or file_sha256(job.destination) != earlier["output_sha256"]:
        return None
    return {"line": job.line, "source": job.source, "destination": job.destination, "status": "skipped", "exit_code": 0,
            "message": "up to date", "output_sha256": earlier["output_sha256"], "seconds": 0.0,
            "source_sha256": source_sha, "options_sha256": job.fingerprint()}  # fmt: skip


def write_results(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Replace ``path`` atomically with ``rows`` in line order (CSV, or JSON lines for ``.jsonl``)."""
    from ._io.atomic import atomic_output

    ordered = sorted(rows, key=lambda row: int(row["line"]))
    with atomic_output(path) as temp, open(temp, "w", encoding="utf-8", newline="") as handle:
        if path.suffix.lower() == ".jsonl":
            for row in ordered:
                handle.write(json.dumps({key: row.get(key) for key in RESULT_COLUMNS}) + "\n")
        else:
            writer = csv.DictWriter(handle, fieldnames=RESULT_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(ordered)


Dispatch = Callable[[list[Job], Callable[[dict[str, Any]], None]], None]


def run_manifest(
    manifest: str | Path,
    *,
    results: str | Path | None = None,
    workers: int = 1,
    engine: str = "local",
    master: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every job of ``manifest``; returns the results rows (also written to ``results``).

    Args:
        results: the results file (default: ``default_results_path(manifest)``); its earlier rows decide skips.
        workers: worker processes for ``engine="local"``; 1 runs the jobs in this process.
        engine: ``"local"`` (a process pool) or ``"spark"`` (one Spark task per job; paths must be
            reachable from the executors).
        progress: called with (jobs finished, jobs) as jobs end.

    Raises:
        ReadError: the manifest or the earlier results cannot be read.
        UsageError: ``workers`` < 1 or an unknown engine.
    """
    if workers < 1:
        raise UsageError(f"workers must be at least 1, got {workers}")
    if engine not in ("local", "spark"):
        raise UsageError(f"engine must be 'local' or 'spark', got {engine!r}")
    jobs = read_manifest(manifest)
    results_path = Path(results) if results is not None else default_results_path(manifest)
    earlier = read_results(results_path)
    rows: dict[int, dict[str, Any]] = {}
    pending = []
    for job in jobs:
        skipped = up_to_date(job, earlier.get((job.source, job.destination)))
        if skipped is None:
            pending.append(job)
        else:
            rows[job.line] = skipped
    notify = progress or (lambda done, total: None)
    last_save = [time.monotonic()]

    def finished(row: dict[str, Any]) -> None:
        rows[int(row["line"])] = row
        notify(len(rows), len(jobs))
        if time.monotonic() - last_save[0] >= SAVE_EVERY_S:  # a crash of the whole run keeps what was done
            write_results(results_path, rows.values())
            last_save[0] = time.monotonic()

    notify(len(rows), len(jobs))
    if pending:
        if engine == "spark":
            _run_spark(pending, finished, master)
        elif workers == 1 or len(pending) == 1:
            for job in pending:  # in this process: no pool to start (HDF5 reads still get their own child process)
                finished(run_job(job))
        else:
            _run_pool(pending, finished, workers)
    write_results(results_path, rows.values())
    return [rows[job.line] for job in jobs]


def _run_pool(jobs: list[Job], finished: Callable[[dict[str, Any]], None], workers: int) -> None:
    """A pool of worker processes; a job that kills its worker is retried alone once, then reported."""
    queue = list(reversed(jobs))
    suspects: list[Job] = []
    while queue:
        with ProcessPoolExecutor(max_workers=workers, mp_context=_context()) as pool:
            running: dict[Future[dict[str, Any]], Job] = {}
            while queue or running:
                while queue and len(running) < 2 * workers:  # a short queue: a broken pool loses little work
                    job = queue.pop()
                    running[pool.submit(run_job, job)] = job
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                broken = False
                for future in done:
                    job = running.pop(future)
                    try:
                        finished(future.result())
                    except BrokenProcessPool:
                        broken = True
                        suspects.append(job)
                if broken:
                    suspects.extend(running.values())
                    break
        for job in suspects:  # each alone in a fresh process: only the job that kills it is reported
            finished(_run_alone(job))
        suspects = []


def _run_spark(jobs: list[Job], finished: Callable[[dict[str, Any]], None], master: str | None) -> None:
    """The jobs as Spark tasks (a few per task slot); their rows come back in order as partitions finish."""
    from .verify.spark import session

    context = session(master).sparkContext
    slices = max(1, min(len(jobs), context.defaultParallelism * 4))
    for row in context.parallelize(jobs, slices).mapPartitions(_run_partition).toLocalIterator():
        finished(row)


def _run_partition(jobs: Iterable[Job]) -> list[dict[str, Any]]:
    """One Spark partition's jobs in a child process of the executor, as the local pool runs them.

    A job that crashes its process (a native reader's segfault, an exit) would otherwise take the
    Spark task down with it, and after Spark's retries the whole job, every other model included;
    here it is retried alone and reported with its row.
    """
    rows: list[dict[str, Any]] = []
    _run_pool(list(jobs), rows.append, workers=1)
    return rows


def _run_alone(job: Job) -> dict[str, Any]:
    with ProcessPoolExecutor(max_workers=1, mp_context=_context()) as pool:
        try:
            return pool.submit(run_job, job).result()
        except BrokenProcessPool:
            return {"line": job.line, "source": job.source, "destination": job.destination, "status": "failed",
                    "exit_code": 3, "message": "the worker process died converting it", "output_sha256": "",
                    "seconds": 0.0, "source_sha256": "", "options_sha256": job.fingerprint()}  # fmt: skip


def _context() -> Any:
    import multiprocessing

    # forkserver where there is one: no fork of a parent that may hold onnxruntime's or BLAS's threads
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # imported once in the fork server: each new worker (a fresh pool after a crash too) starts without importing them
    context.set_forkserver_preload(["nnconvert.manifest", "nnconvert.api", "onnx"])
    return context


def cli_run(args: Any) -> int:
    """``nnconvert convert --manifest``: print a line per failed job; exit with the highest job exit code."""
    import sys

    from .progress import ProgressBar

    bar = ProgressBar("convert", "jobs", quiet=getattr(args, "quiet", False))
    try:
        rows = run_manifest(args.manifest, results=args.results, workers=args.workers, engine=args.engine,
                            master=args.master, progress=bar.update)  # fmt: skip
    finally:
        bar.close()
    counts = {status: sum(1 for row in rows if row["status"] == status) for status in ("ok", "skipped", "failed")}
    for row in rows:
        if row["status"] == "failed":
            print(f"nnconvert: error: line {row['line']}: {row['source']}: {row['message']} (exit {row['exit_code']})", file=sys.stderr)
    results = args.results or default_results_path(args.manifest)
    print(f"{len(rows)} jobs: {counts['ok']} converted, {counts['skipped']} up to date, {counts['failed']} failed; results in {results}")
    return max((int(row["exit_code"]) for row in rows), default=0)

