"""A mainframe-style transaction runtime, small but real, operated by Pilothouse."""
