"""Container images for real: build with the engine present, measure, and run as deployed."""

ENGINES = ("docker", "podman", "buildah")
"""The engines `pilothouse build` and `smoke` look for, in order (here, so the CLI parser can
list them without importing the engine module)."""
