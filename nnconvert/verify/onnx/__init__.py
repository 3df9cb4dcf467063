"""verify's ONNX side: the onnxruntime and reference-evaluator runners, and the test-data evidence.

With the ONNX format package, the only place in nnconvert that imports onnx
(and onnxruntime): the boundary is checked by import-linter (pyproject.toml).
"""
