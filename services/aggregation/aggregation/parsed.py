"""Parsed forms of stored text, reused while the stored text stays the same.

An answer reads its documents on every request (nothing else tells it what changed: another
process may have written them), but parsing them is what costs: the country's plan part is a
quarter of a megabyte of JSON, its node names 63 provinces, a plan holds every schedule period.
So each read goes to the database as before, and the text it brings back is compared with the
text parsed last time for the same field of the same document: the same text gives the same
parsed value, any other text is parsed again. An answer is therefore always computed from the
document as stored at the time of the request, whichever process wrote it.

The parsed values are shared between requests: the code reading them must not change them (the
queries only read; the writer keeps its own copies and never sees these).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")

MAX_CHARS = 32_000_000
"""Stored text kept beside its parsed values, at most (the least recently used go first)."""
MAX_ENTRIES = 20_000


class ParsedTexts:
    """key → (stored text, parsed value), least recently used first."""

    def __init__(self, max_chars: int = MAX_CHARS, max_entries: int = MAX_ENTRIES) -> None:
        self.max_chars = max_chars
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[str, Any]] = OrderedDict()
        self._chars = 0
        self.parsed = 0
        """how many texts were parsed (tests and the profile read it)"""

    def get(self, key: Hashable, text: str, parse: Callable[[str], T]) -> T:
        """The parsed value of `text`, stored under `key`: the one kept when the text is the
        same as last time, else `parse(text)` (kept in its place)."""
        found = self._entries.get(key)
        if found is not None and found[0] == text:
            self._entries.move_to_end(key)
            value: T = found[1]
            return value
        value = parse(text)
        self.parsed += 1
        self._put(key, text, value)
        return value

    def _put(self, key: Hashable, text: str, value: Any) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._chars -= len(old[0])
        if len(text) > self.max_chars // 4:
            return  # too large to keep: parsed for this request only
        self._entries[key] = (text, value)
        self._chars += len(text)
        while self._entries and (
            self._chars > self.max_chars or len(self._entries) > self.max_entries
        ):
            _, (dropped, _) = self._entries.popitem(last=False)
            self._chars -= len(dropped)

    def __len__(self) -> int:
        return len(self._entries)
