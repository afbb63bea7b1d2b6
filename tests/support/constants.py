"""Values the whole suite agrees on: the test settings' secret key, the test PostgreSQL server."""

from __future__ import annotations

import os

SECRET_KEY = "test-secret-key-0123456789-abcdefghijklmnop"

# The server every PostgreSQL test database is created on (see tests/conftest.py).
POSTGRES_URL = os.environ.get(
    "M2M_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
