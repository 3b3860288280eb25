"""notes: a uv project whose image installs from its uv.lock."""
