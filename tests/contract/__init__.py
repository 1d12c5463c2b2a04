"""Contract tests: the live OpenAPI schema against what the app really answers (Schemathesis)."""
