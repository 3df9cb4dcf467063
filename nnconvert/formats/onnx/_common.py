"""Names the ONNX reader and writer share: the format, the ai.onnx.ml domain, nnconvert's metadata keys."""

from __future__ import annotations

FORMAT = "onnx"
ML_DOMAIN = "ai.onnx.ml"
# nnconvert's own files carry the IR document (without arrays) under these metadata_props keys
DESCRIPTION_KEY = "nnconvert.model"
FORMAT_VERSION_KEY = "nnconvert.format_version"
FORMAT_VERSION = "1"
