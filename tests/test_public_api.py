"""The public names stay complete and sorted (httpx's habit): everything a user imports from
`pilothouse` is in `__all__`, and nothing in `__all__` is missing."""

import types

import pilothouse


def test_all_is_sorted_and_complete() -> None:
    assert list(pilothouse.__all__) == sorted(pilothouse.__all__)
    public = {
        name
        for name in vars(pilothouse)
        if not name.startswith("_")
        and not isinstance(vars(pilothouse)[name], types.ModuleType)  # subpackages, imported or not
        and name
        not in {
            "annotations",
            "cli",
            "config",
            "errors",
            "runtime",
            "redaction",
            "catalog",
            "durations",
            "secrets",
            "telemetry",
            "jobs",
            "generators",
            "validation",
            "files",
            "provenance",
            "scaffold",
            "hostinstall",
            "image",
            "protection",
            "sizes",
            "backup",
            "asgi",
            "metrics",
            "features",
        }
    }
    assert public <= set(pilothouse.__all__) | {"__version__"}, public - set(pilothouse.__all__)
    for name in pilothouse.__all__:
        assert hasattr(pilothouse, name), name
