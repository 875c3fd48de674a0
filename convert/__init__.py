"""TFLite export with a representative dataset, and float-vs-int8 parity."""
