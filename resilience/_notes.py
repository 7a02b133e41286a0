"""
The PEP 678 notes policies add to the exceptions they re-raise: one per policy and exception.

An exception object raised again and again (a module-level constant, a mock's
``side_effect``) would otherwise gain one note per call that gave up on it.
A note remembers which policy wrote it, so the next one from that policy
replaces it; notes of other policies (a Retry nested in another) and the
user's own stay.
"""

from __future__ import annotations

from typing import Any, final

__all__ = ["set_note"]


@final
class _Note(str):
    """A note's text, and the policy that wrote it (by `id`)."""

    source: int

    def __reduce__(self) -> tuple[Any, ...]:
        return (str, (str(self),))  # pickles as the plain text it is


def set_note(error: BaseException, source: object, text: str) -> None:
    """
    Add ``resilience: {text}`` to *error*'s notes, replacing the note *source* added before.

    Args:
        error: The exception about to be re-raised.
        source: The policy writing the note (compared by identity).
        text: The note, without the ``resilience: `` prefix.
    """
    key = id(source)
    notes = getattr(error, "__notes__", None)
    if isinstance(notes, list) and notes:
        kept = [n for n in notes if not (isinstance(n, _Note) and n.source == key)]
        if len(kept) != len(notes):
            notes[:] = kept
    note = _Note(f"resilience: {text}")
    note.source = key
    error.add_note(note)
