"""Pretraining: the MAE training loop and what it writes."""
