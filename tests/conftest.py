"""The product's tests: the shared fixtures of :mod:`fixtures`, and the training tests'
(:mod:`train_support`: ``rows``, ``gemma``, ``trained``, once per module)."""

from fixtures import *  # noqa: F403
from train_support import gemma, rows, trained  # noqa: F401
