"""Shared test set-up: Keras runs on the torch backend (no TensorFlow in CI)."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")
