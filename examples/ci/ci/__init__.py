"""The CI system example: a small API over pipelines and builds run as Pilothouse jobs."""
