"""The stand-ins' own tests: the same shared fixtures as the product's (:mod:`fixtures`)."""

from fixtures import *  # noqa: F403
