"""The edges: CLI, wiring (the composition root), daemon, metrics, logs, progress, demo."""
