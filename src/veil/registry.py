"""A tiny name -> factory registry, one per pluggable family (as timm registers models).

Adding a detector, obfuscator, attacker or baseline is one file: define the factory and
decorate it with ``@REGISTRY.register("name")``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from veil.errors import VeilError

T = TypeVar("T")
# The decorated factory keeps its own signature, so a direct call (``unet(width)``) keeps its return type.
F = TypeVar("F", bound=Callable[..., Any])


class BadArguments(VeilError, TypeError):
    """Arguments a factory does not take: a user error (VeilError) that callers which already turn a
    factory's TypeError into their own message still catch as one."""


class Registry(Generic[T]):
    """Maps names to factories that build a ``T``."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[F], F]:
        def decorator(factory: F) -> F:
            if name in self._factories:
                raise ValueError(f"{self.family} {name!r} is registered twice")
            self._factories[name] = factory
            return factory

        return decorator

    def build(self, name: str, **kwargs) -> T:
        if name not in self._factories:
            known = ", ".join(sorted(self._factories)) or "none"
            raise VeilError(f"unknown {self.family} {name!r} (known: {known})")
        factory = self._factories[name]
        try:  # an argument the factory does not take is the user's mistake, not a crash
            inspect.signature(factory).bind(**kwargs)
        except TypeError as exc:
            raise BadArguments(f"{self.family} {name!r}: {exc}") from None
        except ValueError:  # no signature to check (some builtins): the call itself will tell
            pass
        return factory(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: str) -> bool:
        return name in self._factories
