"""`pilothouse install systemd`: put a service on a plain Linux host (or a root filesystem)."""
