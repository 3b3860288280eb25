"""Built-in maintenance jobs: Prometheus cleanup, certificate expiry, the daily operations report."""
