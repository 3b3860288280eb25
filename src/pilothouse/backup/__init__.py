"""`pilothouse backup`: restic backups of what a service owns, restore drills and retention."""
