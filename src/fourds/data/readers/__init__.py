"""Readers of public benchmark formats, each producing `fourds.data.sample.Sample`s.

A file that is not what its format says raises `ReaderError` naming the file and the problem.
"""


class ReaderError(ValueError):
    """A benchmark file that cannot be read as its format: the message names the file and why."""
