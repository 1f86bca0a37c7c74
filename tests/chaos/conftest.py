"""Fixtures of the chaos tests: the movement tests' sandbox harness, reused."""

from tests.movements.conftest import harness, sb

__all__ = ["harness", "sb"]
