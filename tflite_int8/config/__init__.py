"""What to do, as data: the preprocessing spec and presets, the recipe and its variant table, tasks, thresholds."""
