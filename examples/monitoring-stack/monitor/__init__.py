"""The monitoring stack's status API."""
