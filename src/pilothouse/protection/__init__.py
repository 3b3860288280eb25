"""Protection of the app port (`[protection]`): safe errors, security headers, trusted
proxies, request limits and time limits. Installed by `pilothouse.protection.feature`."""
