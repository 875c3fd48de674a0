"""Shipped models: ``*.tflite`` files, each with its sidecar JSON (see ``kws.runtime.meta``)."""

from pathlib import Path

#: Folder that holds the shipped models, wherever the package is installed.
MODELS_DIR = Path(__file__).resolve().parent
