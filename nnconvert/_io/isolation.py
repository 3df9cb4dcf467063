"""Reading a model file in a child process, with a time limit.

libhdf5 can spin forever on some corrupt files, inside C code where no
Python signal handler or exception reaches it (found by tests/fuzz.py). The
only sure way to stop it is to read in another process and kill that process.

The child runs the ordinary in-process ``load`` and sends back only plain
data: JSON (the model's serde document, warnings, or an error's class name,
message and attributes) and the arrays' raw bytes. The parent never
unpickles anything the child sends, so even a child taken over by a hostile
file cannot make the parent run code by answering.

Start method: "fork" on Linux (milliseconds: the child shares the parent's
imported modules; h5py takes its global lock around fork, so a thread busy
in h5py cannot leave the child deadlocked), "spawn" elsewhere (macOS and
Windows, where fork is unsafe or missing; a script calling ``load`` with a
timeout there needs the usual ``if __name__ == "__main__":`` guard).
"""

from __future__ import annotations

import builtins
import contextlib
import json
import math
import multiprocessing
import os
import sys
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import errors
from ..errors import NnconvertError, ReadError, UsageError
from ..ir import Model
from ..serde import json_default, model_from_document, model_to_document
from .hdf5_safety import has_signature
from .zip_safety import ZIP_SIGNATURE

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["load_isolated", "check_timeout", "reads_with_libhdf5", "default_read_timeout"]

# The command line's default time limit for reading an HDF5-based file: a floor
# far above any honest read (small files take milliseconds, h5py's import a
# fraction of a second), plus the time to read the file at 10 MB/s (a slow
# network disk), so that a large honest file is never cut off.
DEFAULT_TIMEOUT_FLOOR = 60.0
DEFAULT_TIMEOUT_BYTES_PER_SECOND = 10 * 10**6
PIPE_BUFFER_BYTES = 1 << 20


def check_timeout(timeout: Any) -> float | None:
    """``timeout`` as seconds (None: no isolation); :class:`UsageError` for anything but a positive number."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or math.isnan(timeout) or timeout <= 0:
        raise UsageError(f"timeout must be a positive number of seconds (or None to read in this process), got {timeout!r}")
    return float(timeout)


def reads_with_libhdf5(path: str | os.PathLike[str], format: str | None = None) -> bool:
    """True when reading ``path`` may run libhdf5: a format declaring ``isolated_reads``, or content detection may open with h5py.

    HDF5 content (the signature at offset 0, 512, 1024...) and zip archives
    with an ``.h5`` member (``.keras``) or whose member list cannot be read
    count; so does an explicitly named format whose spec declares
    ``isolated_reads`` (hdf5, keras-h5, keras). Only the signatures and a
    zip's central directory are read.
    """
    if format is not None:
        from .. import registry
        from ..errors import UnknownFormatError

        try:
            return registry.get(format).isolated_reads
        except UnknownFormatError:  # reported by the read itself
            return False
    try:
        with open(path, "rb") as handle:
            if handle.read(len(ZIP_SIGNATURE)) == ZIP_SIGNATURE:
                return _zip_holds_hdf5(path)
            handle.seek(0)
            head = handle.read(16)  # the HDF5 signature is 8 bytes
        return has_signature(head, Path(path))
    except OSError:
        return False


def _zip_holds_hdf5(path: str | os.PathLike[str]) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.lower().endswith((".h5", ".hdf5")) for name in archive.namelist())
    except Exception:  # noqa: BLE001 - a damaged archive may still reach a reader that opens its members
        return True


def default_read_timeout(path: str | os.PathLike[str], format: str | None = None) -> float | None:
    """The command line's time limit for reading ``path``: None (in-process) unless libhdf5 may read it.

    Returns:
        60 s plus 1 s per 10 MB of file for HDF5-based files; None otherwise.
    """
    if not reads_with_libhdf5(path, format):
        return None
    try:
        size = Path(path).stat().st_size
    except OSError:
        size = 0
    return DEFAULT_TIMEOUT_FLOOR + size / DEFAULT_TIMEOUT_BYTES_PER_SECOND


# -- the parent -------------------------------------------------------------------------


def _context() -> Any:
    method = "fork" if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method)


Reader = Callable[[Path, str, bool, dict[str, Any]], tuple[Model, str]]


def load_isolated(
    path: Path, format: str | None, trust: bool, options: dict[str, Any], timeout: float, reader: Reader
) -> tuple[Model, str]:
    """``reader(path, format, trust, options)`` in a child process, killed after ``timeout`` seconds.

    ``reader`` is the in-process read (``nnconvert.api``'s): passed in, so that this
    layer below the API never imports it. It must be a module-level function (the
    "spawn" start method pickles it by name).

    Returns:
        The model and the name of the format it was read as.

    Raises:
        ReadError: the time ran out, or the child died (a crash in a C library).
        NnconvertError: whatever the read raised in the child, same class and message.
    """
    context = _context()
    receiver, sender = context.Pipe(duplex=False)
    _widen(receiver)
    child = context.Process(
        target=_child_main, args=(sender, reader, str(path), format, trust, options), name="nnconvert-reader", daemon=True
    )
    child.start()
    sender.close()  # the parent's copy: EOF when the child dies
    try:
        return _receive(receiver, child, path, format, time.monotonic() + timeout, timeout)
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join()


def _widen(receiver: Any) -> None:
    """A 1 MiB pipe buffer (Linux; the unprivileged maximum) instead of 64 KiB: fewer context switches.

    Measured on a 37.7M-weight float64 model (300 MB): 0.4-0.65 s to move the weights with 64 KiB, 0.29 s with 1 MiB.
    """
    option = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if option is not None:
        with contextlib.suppress(OSError, ValueError):
            fcntl.fcntl(receiver.fileno(), option, PIPE_BUFFER_BYTES)


def _receive(receiver: Any, child: Any, path: Path, format: str | None, deadline: float, timeout: float) -> tuple[Model, str]:
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not receiver.poll(remaining):
            child.kill()
            raise ReadError(
                f"reading took longer than {timeout:g} s; the file is probably corrupt or hostile",
                path=path,
                format=format,
            )
        try:
            message = json.loads(receiver.recv_bytes())
        except EOFError:
            child.join()
            raise ReadError(_death(child.exitcode), path=path, format=format) from None
        if message["kind"] == "format":
            format = message["format"]
        elif message["kind"] == "warning":
            warnings.warn(message["message"], _warning_class(message["category"]), stacklevel=5)
        elif message["kind"] == "error":
            raise _rebuild_error(message, path, format)
        else:
            return _receive_model(receiver, message, path), message["format"]


def _receive_model(receiver: Any, message: dict[str, Any], path: Path) -> Model:
    arrays = []
    for spec in message["arrays"]:
        data = receiver.recv_bytes()
        # the bytes object is the array's memory: no further copy (the IR keeps arrays read-only anyway)
        arrays.append(np.frombuffer(data, dtype=np.dtype(spec["dtype"])).reshape(spec["shape"]))
    return model_from_document(message["document"], lambda encoded, key: arrays[encoded], path=path, format=message["format"])


def _death(exitcode: int | None) -> str:
    how = f"was killed by signal {-exitcode}" if exitcode is not None and exitcode < 0 else f"exited with code {exitcode}"
    return f"the reader process {how} before answering (a crash in a parsing library); the file is probably corrupt or hostile"


def _warning_class(name: str) -> type[Warning]:
    candidate = getattr(builtins, name, None)
    return candidate if isinstance(candidate, type) and issubclass(candidate, Warning) else UserWarning


def _rebuild_error(message: dict[str, Any], path: Path, format: str | None) -> NnconvertError:
    """The child's error as the same nnconvert class, with the same message and attributes."""
    cls = getattr(errors, message["class"], None)
    if not (isinstance(cls, type) and issubclass(cls, NnconvertError)):
        return ReadError(f"{message['message']} ({message['class']})", path=path, format=format)
    error = cls.__new__(cls)
    Exception.__init__(error, message["message"])
    error.__dict__.update(message["attributes"])
    return error


# -- the child ----------------------------------------------------------------------------


def _child_main(sender: Any, reader: Reader, path: str, format: str | None, trust: bool, options: dict[str, Any]) -> None:
    """Read the file and send the outcome as JSON messages plus raw array bytes."""
    from .. import registry

    def send(message: dict[str, Any]) -> None:
        sender.send_bytes(json.dumps(message, default=json_default).encode())

    model, failure = None, None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            # detection may open the file with h5py too: the parent learns the format once it is known
            name = format if format is not None else registry.detect(path).name
            send({"kind": "format", "format": name})
            model, name = reader(Path(path), name, trust, options)
        except NnconvertError as exc:
            failure = {"kind": "error", "class": type(exc).__name__, "message": str(exc), "attributes": _json_attributes(exc)}
        except BaseException as exc:  # noqa: BLE001 - the parent gets a ReadError instead of silence
            failure = {"kind": "error", "class": type(exc).__name__, "message": f"the reader process failed: {exc}", "attributes": {}}
    try:
        for warning in caught:
            send({"kind": "warning", "category": warning.category.__name__, "message": str(warning.message)})
        if failure is not None:
            send(failure)
        elif model is None:  # the reader returns a Model or raises: reported below like any other send failure
            raise RuntimeError("the reader returned no model and no error")
        else:
            _send_model(sender, send, model, name)
    except Exception as exc:  # noqa: BLE001 - nothing partial was sent: each message is encoded first
        send({"kind": "error", "class": type(exc).__name__, "message": f"cannot send the model to the caller: {exc}", "attributes": {}})
    finally:
        sender.close()


def _send_model(sender: Any, send: Any, model: Model, format_name: str) -> None:
    arrays: list[np.ndarray] = []

    def encode(array: np.ndarray, key: str) -> int:
        arrays.append(np.ascontiguousarray(array))
        return len(arrays) - 1

    document = model_to_document(model, encode)
    specs = [{"dtype": array.dtype.str, "shape": list(array.shape)} for array in arrays]
    send({"kind": "model", "format": format_name, "document": document, "arrays": specs})
    for array in arrays:
        sender.send_bytes(array.reshape(-1).view(np.uint8))  # straight from the array's memory




def _json_attributes(exc: BaseException) -> dict[str, Any]:
    attributes = {}
    for name, value in vars(exc).items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        attributes[name] = value
    return attributes
