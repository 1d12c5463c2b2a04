"""Fixtures of the security tests: the app on the test's own event loop (streamed request bodies), shared
with the API tests."""

from tests.api.conftest import live_api, live_app

__all__ = ["live_api", "live_app"]
