"""What runs inside the service: lifecycle, checks, ops endpoints, middleware, the server."""
