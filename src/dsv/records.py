"""``Record``: small value classes without dataclasses' start-up cost.

``@dataclass`` compiles generated methods with ``exec`` when a module is
imported (about half a millisecond per class): with a dozen of them on the
path of ``dsv status`` that was a tenth of its run time.  Classes here declare
``__slots__`` and an explicit ``__init__``; this base derives equality, hashing
and ``repr`` from the slots.
"""

from __future__ import annotations

# typing is imported for the type checker only: `dsv status` never loads it
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Record:
    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, n) for n in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record) or other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((self.__class__.__name__, *self._values()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{self.__class__.__name__}({inner})"
