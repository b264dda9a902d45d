"""The notebook's work as software: config (no torch), data, models, training, CUDA graphs,
inspection, and what a training command saves. No benchmark knowledge here."""
