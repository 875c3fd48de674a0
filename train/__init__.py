"""Desktop side: data loading, models, augmentation and training (needs TensorFlow)."""
