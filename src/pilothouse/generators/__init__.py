"""Generators: pure functions from the config model (and the metric catalog) to documents.

No I/O here: a generator returns `{relative path: file content}`; the CLI writes the bundle.
Output is deterministic (sorted keys, stable order) so it can be snapshot-tested and diffed.
"""
