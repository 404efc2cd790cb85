"""Aggregation of stage metrics into the scaling report."""
