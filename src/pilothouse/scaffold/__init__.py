"""`pilothouse init`: look at a project (`detect`) and write its first pilothouse.toml (`render`)."""
