"""Test support shared by the suites: local stand-ins for stock images, and their pytest fixtures.

Nothing here ships in the product. :mod:`testsupport.standins` makes ``python:3.11-slim``,
``redis:7-alpine``, ``postgres:16`` and ``nginx:1.25`` locally (nothing can be pulled on these
machines) so that projects written for the official images build and run unchanged;
:mod:`testsupport.fixtures` hands them to pytest.
"""
