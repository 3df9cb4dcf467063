"""scikit-learn estimators on disk: pickle / joblib files and skops files.

Unpickling runs whatever code the file names, so the ``sklearn-pickle``
format is registered with ``needs_trust``: :func:`nnconvert.load` refuses it
unless called with ``trust=True``, before this module ever opens the file.
Sniffing only looks at the first bytes and never unpickles.

skops files are safe to inspect: the reader lists the types a file would
create (``skops.io.get_untrusted_types``) and refuses any that is outside a
fixed list of what an MLP, its scalers and their numpy state need.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

from .._io.atomic import Output, as_output
from .._io.zip_safety import charge_every_member, checked_members
from ..converters.sklearn import from_sklearn, to_sklearn
from ..errors import (
    InvalidModelError,
    NnconvertError,
    ReadError,
    UnsupportedModelError,
    UntrustedInputError,
    UsageError,
)
from ..ir import Model
from ..registry import FormatSpec, Option, register

__all__ = [
    "read_pickle",
    "write_pickle",
    "sniff_pickle",
    "read_skops",
    "write_skops",
    "sniff_skops",
    "TRUSTED_SKOPS_TYPES",
]

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")

# Pickle protocols 2-5 open with PROTO (0x80) and the protocol number.
_PICKLE_PROTOCOLS = (2, 3, 4, 5)
# joblib's compressed files: zlib (its default and its legacy "ZF" container), gzip, bz2, xz, lzma, lz4.
# These headers say "compressed", not "pickle", so they count only with a pickle suffix.
_JOBLIB_COMPRESSED_MAGICS = (
    b"ZF",
    b"\x78\x01",
    b"\x78\x5e",
    b"\x78\x9c",
    b"\x78\xda",
    b"\x1f\x8b",
    b"BZh",
    b"\xfd7zXZ\x00",
    b"\x5d\x00\x00",
    b"\x04\x22\x4d\x18",
)

# The types a fitted MLP (alone or in a Pipeline of the three scalers) is made of, beyond
# skops' own defaults. Listed explicitly so that what we load does not depend on those defaults.
TRUSTED_SKOPS_TYPES = (
    "sklearn.neural_network._multilayer_perceptron.MLPClassifier",
    "sklearn.neural_network._multilayer_perceptron.MLPRegressor",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._data.MinMaxScaler",
    "sklearn.preprocessing._data.MaxAbsScaler",
    "sklearn.preprocessing._label.LabelBinarizer",
    "numpy.ndarray",
    "numpy.dtype",
    "numpy.float16",
    "numpy.float32",
    "numpy.float64",
    "numpy.int32",
    "numpy.int64",
    "numpy.bool_",
    "numpy.bool",
    "numpy.str_",
    "numpy.random.mtrand.RandomState",
    "numpy.random._mt19937.MT19937",
)

_SKOPS_SCHEMA_MEMBER = "schema.json"
# the plain containers and scalars skops writes around those types
_SKOPS_CONTAINER_TYPES = (
    "builtins.dict",
    "builtins.list",
    "builtins.tuple",
    "builtins.str",
    "builtins.int",
    "builtins.float",
    "builtins.bool",
    "builtins.NoneType",
    "builtins.bytes",
)
_MAX_SCHEMA_BYTES = 64 * 2**20


# -- shared -----------------------------------------------------------------


def _converted(estimator: Any, path: Path) -> Model:
    """from_sklearn, with the file named in its errors."""
    try:
        return from_sklearn(estimator)
    except UnsupportedModelError as exc:
        raise UnsupportedModelError(f"{path}: {exc.args[0].split(chr(10))[0]}", exc.problems) from exc
    except InvalidModelError as exc:
        raise InvalidModelError(f"{path}: {exc}") from exc
    except NnconvertError:
        raise
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
        # a damaged or forged file can hold an estimator missing fitted attributes or holding odd values
        raise ReadError(
            f"the file holds a {type(estimator).__name__} that is incomplete or inconsistent "
            f"({type(exc).__name__} while converting it: {exc})",
            path=path,
            format=None,
        ) from exc


# -- pickle / joblib ----------------------------------------------------------


def read_pickle(path: str | Path, **options: Any) -> Model:
    """Unpickle a scikit-learn estimator (plain pickle or joblib file) and convert it.

    Only reached through ``nnconvert.load(..., trust=True)``: unpickling runs code from the file.

    Args:
        path: the file.

    Returns:
        The model graph.

    Raises:
        ReadError: the file cannot be unpickled.
        UnsupportedModelError: it holds something other than a supported MLP or Pipeline.
        InvalidModelError: it holds an unfitted estimator.
    """
    path = Path(path)
    return _converted(load_pickled_estimator(path), path)


def load_pickled_estimator(path: str | Path) -> Any:
    """The object in a pickle or joblib file. Runs code from the file: callers check trust first.

    Raises:
        ReadError: the file cannot be unpickled.
    """
    import joblib

    try:
        return joblib.load(path)  # joblib.load also reads plain pickles
    except Exception as exc:  # noqa: BLE001 - a broken pickle can raise anything; it is still a bad input
        raise ReadError(
            f"cannot unpickle the file: {type(exc).__name__}: {exc}", path=path, format="sklearn-pickle"
        ) from exc


def _check_pickle_options(compress: Any, protocol: Any) -> None:
    if not (isinstance(compress, bool | int) and 0 <= compress <= 9):
        raise UsageError(f"sklearn-pickle option compress must be True/False or a level 0-9, got {compress!r}")
    if protocol is not None and (isinstance(protocol, bool) or protocol not in _PICKLE_PROTOCOLS):
        raise UsageError(f"sklearn-pickle option protocol must be one of {_PICKLE_PROTOCOLS}, got {protocol!r}")


def write_pickle(
    model: Model, output: Output | str | Path, *, compress: Any = 0, protocol: Any = None, fold_batchnorm: bool = False
) -> None:
    """Write the scikit-learn estimator of ``model`` with joblib.

    Args:
        model: the model graph.
        output: where to write (a temporary file's :class:`~nnconvert._io.atomic.Output` when
            called by ``nnconvert.save``), or a path.
        compress: joblib's compression level 0-9 (or True for 3).
        protocol: the pickle protocol (2-5); joblib's default when None.
        fold_batchnorm: fold batch norm layers into the adjacent dense layers (see :func:`to_sklearn`).

    Raises:
        UnsupportedModelError: scikit-learn cannot express the model.
        UsageError: a bad option value.
    """
    import joblib

    _check_pickle_options(compress, protocol)
    estimator = to_sklearn(model, fold_batchnorm=fold_batchnorm)
    joblib.dump(estimator, str(as_output(output).path), compress=compress, protocol=protocol)


def sniff_pickle(head: bytes, path: Path) -> bool:
    """True for a pickle (protocol 2-5) header, or a joblib compressed header with a pickle suffix."""
    if len(head) >= 2 and head[0] == 0x80 and head[1] in _PICKLE_PROTOCOLS:
        return True
    return Path(path).suffix.lower() in PICKLE_SUFFIXES and head.startswith(_JOBLIB_COMPRESSED_MAGICS)


# -- skops --------------------------------------------------------------------


def _untrusted_types(path: Path) -> list[str]:
    import skops.io

    try:
        return list(skops.io.get_untrusted_types(file=path))
    except zipfile.BadZipFile as exc:
        raise ReadError(f"not a skops file (not a zip archive): {exc}", path=path, format="skops") from exc
    except KeyError as exc:
        raise ReadError(f"not a skops file: the archive has no {exc}", path=path, format="skops") from exc
    except Exception as exc:  # noqa: BLE001 - skops reports a malformed schema with assorted exceptions
        raise ReadError(
            f"cannot read the skops schema: {type(exc).__name__}: {exc}", path=path, format="skops"
        ) from exc


def _charge_members(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            charge_every_member(archive, checked_members(archive, path, "skops"), path, "skops")
    except zipfile.BadZipFile as exc:
        raise ReadError(f"not a skops file (not a zip archive): {exc}", path=path, format="skops") from None
    except (OSError, EOFError, RuntimeError, NotImplementedError, zipfile.LargeZipFile) as exc:
        raise ReadError(f"the archive's members cannot be read: {exc}", path=path, format="skops") from None


def _schema_types(path: Path) -> set[str]:
    """Every type the skops schema names (objects, functions, type references), without loading anything."""

    def fail(message: str) -> ReadError:
        return ReadError(message, path=path, format="skops")

    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(_SKOPS_SCHEMA_MEMBER)
            if info.file_size > _MAX_SCHEMA_BYTES:
                raise fail(f"{_SKOPS_SCHEMA_MEMBER} declares {info.file_size} bytes, over the limit of {_MAX_SCHEMA_BYTES}")
            text = archive.read(info)
    except zipfile.BadZipFile as exc:
        raise fail(f"not a skops file (not a zip archive): {exc}") from None
    except KeyError:
        raise fail(f"not a skops file: the archive has no {_SKOPS_SCHEMA_MEMBER}") from None
    except (OSError, EOFError, RuntimeError, NotImplementedError, zipfile.LargeZipFile) as exc:
        raise fail(f"{_SKOPS_SCHEMA_MEMBER} cannot be read from the archive: {exc}") from None
    try:
        schema = json.loads(text)
    except RecursionError:
        raise fail(f"{_SKOPS_SCHEMA_MEMBER} is nested too deeply to be a skops schema") from None
    except ValueError as exc:
        raise fail(f"{_SKOPS_SCHEMA_MEMBER} is not valid JSON: {exc}") from None
    types, pending = set(), [schema]
    while pending:  # iterative: a schema nested thousands deep must not exhaust the stack
        node = pending.pop()
        if isinstance(node, dict):
            module, name = node.get("__module__"), node.get("__class__")
            if module is not None or name is not None:
                types.add(f"{module}.{name}")
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return types


def read_skops(path: str | Path, **options: Any) -> Model:
    """Load a skops file, creating only the types a supported MLP needs, and convert it.

    Args:
        path: the file.

    Returns:
        The model graph.

    Raises:
        UntrustedInputError: the file contains a type outside :data:`TRUSTED_SKOPS_TYPES` (named).
        ReadError: the file is not a readable skops file.
        UnsupportedModelError: it holds something other than a supported MLP or Pipeline.
        InvalidModelError: it holds an unfitted estimator.
    """
    path = Path(path)
    return _converted(load_skops_estimator(path), path)


def load_skops_estimator(path: str | Path) -> Any:
    """The estimator in a skops file, creating only the types of :data:`TRUSTED_SKOPS_TYPES`.

    Raises:
        UntrustedInputError: the file contains another type (named).
        ReadError: the file is not a readable skops file.
    """
    import skops.io

    path = Path(path)
    allowed = set(TRUSTED_SKOPS_TYPES) | set(_SKOPS_CONTAINER_TYPES)
    _charge_members(path)  # skops inflates every member (even to list the types): charged before it does
    # the schema is checked against our own list: skops' default trust covers far more than an MLP needs
    refused = sorted((_schema_types(path) | set(_untrusted_types(path))) - allowed)
    if refused:
        raise UntrustedInputError(
            f"{path}: the skops file contains type(s) nnconvert does not load: {', '.join(refused)}. "
            "nnconvert only creates the types of an MLPClassifier/MLPRegressor and its scalers. If you trust "
            "the file, load it yourself with skops.io.load(path, trusted=[...]) after reviewing "
            "skops.io.get_untrusted_types, and convert the estimator with nnconvert.from_sklearn"
        )
    try:
        estimator = skops.io.load(path, trusted=list(TRUSTED_SKOPS_TYPES))
    except Exception as exc:  # noqa: BLE001 - skops raises assorted exceptions on a corrupt archive
        if type(exc).__name__ == "UntrustedTypesFoundException":
            raise UntrustedInputError(f"{path}: skops refused the file: {exc}") from exc
        raise ReadError(f"cannot load the skops file: {type(exc).__name__}: {exc}", path=path, format="skops") from exc
    return estimator


_ZIP_METHODS = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "deflated",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma",
}


def write_skops(
    model: Model,
    output: Output | str | Path,
    *,
    compression: Any = zipfile.ZIP_STORED,
    compresslevel: Any = None,
    fold_batchnorm: bool = False,
) -> None:
    """Write the scikit-learn estimator of ``model`` as a skops file.

    Args:
        model: the model graph.
        output: where to write (a temporary file's :class:`~nnconvert._io.atomic.Output` when
            called by ``nnconvert.save``), or a path.
        compression: a zipfile method constant (``zipfile.ZIP_DEFLATED``...), or its name.
        compresslevel: the zip compression level, as zipfile takes it.
        fold_batchnorm: fold batch norm layers into the adjacent dense layers (see :func:`to_sklearn`).

    Raises:
        UnsupportedModelError: scikit-learn cannot express the model.
        UsageError: a bad option value.
    """
    import skops.io

    by_name = {name: method for method, name in _ZIP_METHODS.items()}
    method = by_name.get(compression, compression) if isinstance(compression, str) else compression
    if isinstance(method, bool) or method not in _ZIP_METHODS:
        raise UsageError(
            f"skops option compression must be one of {sorted(by_name)} (or zipfile's constants), got {compression!r}"
        )
    if compresslevel is not None and (isinstance(compresslevel, bool) or not isinstance(compresslevel, int)):
        raise UsageError(f"skops option compresslevel must be an integer, got {compresslevel!r}")
    estimator = to_sklearn(model, fold_batchnorm=fold_batchnorm)
    buffer = io.BytesIO()
    skops.io.dump(estimator, buffer, compression=method, compresslevel=compresslevel)
    with open(as_output(output).path, "wb") as handle:
        handle.write(_without_timestamps(buffer.getvalue(), compresslevel))


def _without_timestamps(archive_bytes: bytes, compresslevel: Any) -> bytes:
    """The archive made deterministic, so that the same model gives the same bytes.

    skops names array members and ``__id__`` fields after ``id()`` of the
    objects (memory addresses) and dates members with the clock; both are
    renumbered in order of appearance (shared references keep sharing an id)
    and every member is dated 1980-01-01.
    """
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive_bytes)) as source:
        infos = source.infolist()
        members = {info.filename: source.read(info) for info in infos}
    names = {name: f"{index}.npy" for index, name in enumerate(n for n in members if n != _SKOPS_SCHEMA_MEMBER)}
    ids: dict[Any, int] = {}
    schema = _renumbered(json.loads(members[_SKOPS_SCHEMA_MEMBER]), names, ids)
    members[_SKOPS_SCHEMA_MEMBER] = json.dumps(schema, indent=2).encode("utf-8")
    with zipfile.ZipFile(out, "w") as target:
        for info in infos:
            fixed = zipfile.ZipInfo(names.get(info.filename, info.filename), date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type = info.compress_type
            fixed.external_attr = info.external_attr
            target.writestr(fixed, members[info.filename], compresslevel=compresslevel)
    return out.getvalue()


def _renumbered(node: Any, names: dict[str, str], ids: dict[Any, int]) -> Any:
    if isinstance(node, dict):
        renamed: dict[Any, Any] = {}
        for key, value in node.items():
            if key == "__id__":
                renamed[key] = ids.setdefault(value, len(ids))
            elif isinstance(value, str) and value in names:
                renamed[key] = names[value]
            else:
                renamed[key] = _renumbered(value, names, ids)
        return renamed
    if isinstance(node, list):
        return [_renumbered(value, names, ids) for value in node]
    return node


def sniff_skops(head: bytes, path: Path) -> bool:
    """True for a zip archive with skops' ``schema.json`` member."""
    if not head.startswith(b"PK\x03\x04"):
        return False
    try:  # the member list sits at the end of the archive, beyond the head
        with zipfile.ZipFile(path) as archive:
            return _SKOPS_SCHEMA_MEMBER in archive.namelist()
    except Exception:  # noqa: BLE001 - a probe never raises
        return False


# scikit-learn has no normalization layer: folding batch norms into dense layers is the user's call
_FOLD_BATCHNORM = Option(
    "fold_batchnorm",
    bool,
    default=False,
    flag_value=True,
    help="fold batch norm layers into the adjacent dense layers (close, not identical: add --verify to see the difference)",
)


register(
    FormatSpec(
        name="sklearn-pickle",
        suffixes=PICKLE_SUFFIXES,
        description="scikit-learn estimator pickled by pickle or joblib (loading runs code: needs trust)",
        read=read_pickle,
        write=write_pickle,
        sniff=sniff_pickle,
        requires={"joblib": "joblib", "sklearn": "scikit-learn"},
        write_options=(
            Option("compress", int, choices=tuple(range(10)), default=0, help="joblib compression level 0-9", flag=None, also=(bool,)),
            Option("protocol", int, choices=_PICKLE_PROTOCOLS, help="pickle protocol (joblib's default when not given)", flag=None),
            _FOLD_BATCHNORM,
        ),
        needs_trust=True,
        runner="sklearn",
        load_native=load_pickled_estimator,
    )
)
register(
    FormatSpec(
        name="skops",
        suffixes=(".skops",),
        description="scikit-learn estimator in a skops file (loads a fixed list of trusted types only)",
        read=read_skops,
        write=write_skops,
        sniff=sniff_skops,
        requires={"skops": "skops", "sklearn": "scikit-learn"},
        write_options=(
            Option("compression", str, choices=tuple(_ZIP_METHODS.values()), default="stored", help="zip method", flag=None, also=(int,)),
            Option("compresslevel", int, help="zip compression level, as zipfile takes it", flag=None),
            _FOLD_BATCHNORM,
        ),
        runner="sklearn",
        load_native=load_skops_estimator,
    )
)
