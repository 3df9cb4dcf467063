"""Spark: verify over a data lake, convert a registry (``pip install 'nnconvert[spark]'``; docs/scale.md).

    >>> report = nnconvert.spark.verify("s3a://bucket/rows/", "reference.onnx", "candidate.onnx")
    >>> nnconvert.spark.run_manifest("jobs.csv")

pyspark is imported only when a function runs.
"""

from __future__ import annotations

from typing import Any

from .verify.spark import session, verify

__all__ = ["verify", "session", "run_manifest"]


def run_manifest(manifest: Any, **options: Any) -> list[dict[str, Any]]:
    """``convert --manifest --engine spark``: :func:`nnconvert.manifest.run_manifest` with ``engine="spark"``."""
    from .manifest import run_manifest as run

    return run(manifest, engine="spark", **options)
