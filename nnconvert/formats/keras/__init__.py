"""Keras' model files: full-model HDF5 (tf.keras 2 and Keras 3) and Keras 3 ``.keras`` zips.

Two formats:

- ``keras-h5`` (``.h5``): read and write. Root attributes ``model_config``
  (JSON), ``keras_version`` and ``backend``; weights under
  ``model_weights/<layer>/`` at the paths listed by each layer group's
  ``weight_names`` attribute (``<layer>/kernel:0`` for tf.keras 2,
  ``<model>/<layer>/kernel`` for Keras 3). The files written load with Keras
  3's ``keras.models.load_model``.
- ``keras`` (``.keras``): read and write. A zip of ``config.json``,
  ``metadata.json`` and ``model.weights.h5`` (weights at
  ``layers/<path>/vars/<i>``, each ``vars`` group naming its layer).

Keras is never imported: configs are parsed with :mod:`json` as plain data and
only a fixed list of layer classes is understood, so nothing from the file is
deserialised or executed. Anything else (Lambda, custom classes, branching
graphs) is refused with one error listing every offending layer.

Modules: :mod:`.config` (the config as data), :mod:`.build` and :mod:`.head`
(the IR from config and weights), :mod:`.h5` and :mod:`.archive` (the two
containers), :mod:`.write` (the keras-h5 writer and the layers both writers share),
:mod:`.archive_write` (the .keras writer).
"""

from __future__ import annotations

from ...head import READ_OPTIONS
from ...registry import FormatSpec, Option, register
from .archive import read_keras, sniff_keras
from .archive_write import write_keras
from .h5 import read_h5, sniff_h5
from .write import write_h5

__all__ = ["read_h5", "read_keras", "write_h5", "write_keras", "sniff_h5", "sniff_keras"]

# nnconvert's own hdf5 layout also claims .h5: content sniffing tells the two apart, and when
# the content says nothing the suffix fallback takes hdf5 first by its lower priority.
KERAS_H5_PRIORITY = 20
WRITE_OPTIONS = (
    Option("dtype", str, choices=("float32", "float64"), default="float32", help="dtype of the written weights"),
)

register(
    FormatSpec(
        name="keras-h5",
        suffixes=(".h5", ".hdf5"),
        description="Keras full-model HDF5 (tf.keras 2 and Keras 3 model.save('x.h5'))",
        read=read_h5,
        write=write_h5,
        sniff=sniff_h5,
        requires={"h5py": "h5py"},
        read_options=READ_OPTIONS,
        write_options=WRITE_OPTIONS,
        isolated_reads=True,  # libhdf5 parses the file
        priority=KERAS_H5_PRIORITY,
    )
)
register(
    FormatSpec(
        name="keras",
        suffixes=(".keras",),
        description="Keras 3 .keras archive (config.json + model.weights.h5)",
        read=read_keras,
        write=write_keras,
        sniff=sniff_keras,
        requires={"h5py": "h5py"},
        read_options=READ_OPTIONS,
        write_options=WRITE_OPTIONS,
        isolated_reads=True,  # libhdf5 parses the archive's weights file
    )
)
