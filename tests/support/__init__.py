"""Helpers the test files share: one home per idea, one name per meaning.

Fixtures live in ``tests/conftest.py`` (which may import from here); test files import helpers
from here, never from another test file nor from conftest.

- ``constants``: the secret key of the test settings, the test PostgreSQL server.
- ``api``: the M2M API calls a test makes through a ``TestClient`` (tokens, callback
  configuration, lifecycle requests, waiting for one to finish, reading a SIM).
- ``sims``: SIMs added straight to the database, and counting rows.
- ``tenants``: accounts with their credentials.
- ``intake``: lifecycle requests accepted straight through ``m2m.intake`` (any account).
- ``worker``: running the worker in-process until it has nothing left to do.
- ``waiting``: polling until a condition holds.
- ``servers``: loopback ports, the app served in a thread, ``m2m`` processes and their
  environment, a server without the m2m extensions.
- ``receiver``: a real HTTP server that records the callbacks it receives.
- ``console``: the web console's client, logging in, CSRF tokens.
"""
