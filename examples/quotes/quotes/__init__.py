"""quotes: a FastAPI service with its own pyproject.toml, made operable by Pilothouse."""
