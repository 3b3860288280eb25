"""A broker-integration service, small but real, operated by Pilothouse."""
