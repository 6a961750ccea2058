"""Training (torch): config, data, augmentation, models, evaluation and the reference loop."""
