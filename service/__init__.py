"""The application: use cases, persistence, the Litestar app, settings, logging, auth and CLI."""
