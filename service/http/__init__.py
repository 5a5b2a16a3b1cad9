"""The HTTP boundary: middleware (auth, limits, metrics, logs, reads), error mapping, request helpers, dependencies."""
