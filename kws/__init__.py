"""kws-edge: keyword spotting from desktop training to an always-on Raspberry Pi.

The import package maps the repository's top-level folders:

- ``kws.runtime``  <- ``runtime/``  (numpy + an interpreter; runs on the Pi)
- ``kws.train``    <- ``train/``    (data, models, training; needs TensorFlow)
- ``kws.convert``  <- ``convert/``  (TFLite export and parity; needs TensorFlow)
- ``kws.models``   <- ``models/``   (shipped .tflite models and their JSON)
"""

__version__ = "0.1.0"
