"""The Raspberry Pi runtime: numpy front-end, TFLite interpreter, streaming and detection.

Nothing in this package imports TensorFlow, Keras, librosa or scikit-learn, and nothing
happens at import time (no microphone is opened, no model is loaded).
"""
