"""
Modules imported when first used, not at ``import resilience``.

``asyncio`` costs about a third of the library's import time, and sync code
never needs it; async code has imported it already. A module that uses it
binds the name to a `lazy_module` stand-in, which imports the real module on
the first attribute read and puts it in its place: from then on, the name is
the module itself, at no cost.
"""

from __future__ import annotations

from typing import Any, final

__all__ = ["lazy_module"]


@final
class _LazyModule:
    """Stands for module *name* in *namespace* until an attribute of it is read."""

    __slots__ = ("_name", "_namespace")

    def __init__(self, name: str, namespace: dict[str, Any]) -> None:
        self._name = name
        self._namespace = namespace

    def __getattr__(self, attribute: str) -> Any:
        module = __import__(self._name)
        self._namespace[self._name] = module  # the global is the module from now on
        return getattr(module, attribute)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported on first use>"


def lazy_module(name: str, namespace: dict[str, Any]) -> Any:
    """Return a stand-in for the top-level module *name*, bound as *name* in *namespace*."""
    return _LazyModule(name, namespace)
