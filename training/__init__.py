"""Training: task specs, data, augmentation, the engine and the CLIs that write run directories."""
