"""The e2e fixtures, for the socket checks."""

from tests.e2e.conftest import gitops, stack  # noqa: F401 - fixtures
