"""Models that ship with runback, to try it and to test it."""

from runback.models.builtin import register_builtins

__all__ = ["register_builtins"]
