"""Readers of public benchmark formats, each producing `fourds.data.sample.Sample`s."""
