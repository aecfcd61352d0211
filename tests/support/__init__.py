"""Shared test support: real servers (servers.py), the browser (browser.py), a small platform world
(world.py). Fixtures built on them live in tests/conftest.py."""
