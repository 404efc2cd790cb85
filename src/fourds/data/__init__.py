"""Video I/O, the embedded corpus, and curation into clip shards."""
