"""Frozen-encoder readout evaluation: tasks, training, metrics."""
