"""The Raspberry Pi runtime: numpy front-end, TFLite interpreter, streaming and detection.

Nothing in this package imports TensorFlow, Keras, librosa or scikit-learn, and nothing
happens at import time (no microphone is opened, no model is loaded).

One process-wide default is set here, before numpy is first imported by a ``kws-*`` command:
``OPENBLAS_NUM_THREADS=1`` (unless the user set it). The front-end's only BLAS call is a small
mel-filterbank product; OpenBLAS wakes a worker thread per core for it, which on a loaded
machine turned 0.6 ms per window into 8.6 ms (p90 41 ms) in ``kws-bench``. A user's own value
always wins, and a process that imported numpy before ``kws.runtime`` keeps its setting.
"""

import os as _os

_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
