"""Fixtures of the chaos tests: the movement tests' sandbox harness, reused."""

from tests.run.conftest import harness

__all__ = ["harness"]
