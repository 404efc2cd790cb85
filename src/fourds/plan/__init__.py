"""Compute plans: parameters, FLOPs, memory per device, GPU counts and time per ladder scale."""
