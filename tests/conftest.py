"""The product's tests: the shared fixtures of :mod:`fixtures`."""

from fixtures import *  # noqa: F403
