"""A name → entry registry with errors that list the known names.

The engine keeps one registry per concept (losses, optimisers, schedules, augmentations,
models); adding one is adding one entry, and a config option is checked against the
registry's names when the config is built.
"""
from __future__ import annotations

from typing import Generic, Iterator, Mapping, TypeVar

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
  """Entries by name. ``registry[name]`` raises ``ValueError`` naming the known entries.

  Args:
    kind: what an entry is, for messages ("loss", "optimizer", ...).
  """

  def __init__(self, kind: str):
    self.kind = kind
    self._entries: dict[str, T] = {}
    self._summaries: dict[str, str] = {}

  def register(self, name: str, entry: T, summary: str = "") -> T:
    """Add ``entry`` under ``name`` (a one-line ``summary`` for ``hw list``); returns it."""
    if name in self._entries:
      raise ValueError(f"{self.kind} {name!r} is registered already")
    self._entries[name] = entry
    self._summaries[name] = summary
    return entry

  def __getitem__(self, name: str) -> T:
    if name not in self._entries:
      raise ValueError(self.unknown(name))
    return self._entries[name]

  def __iter__(self) -> Iterator[str]:
    return iter(self._entries)

  def __len__(self) -> int:
    return len(self._entries)

  def summary(self, name: str) -> str:
    return self._summaries[name]

  def unknown(self, name: object, *, field: str | None = None) -> str:
    """The message for an unknown ``name`` (given as config ``field``)."""
    what = f"{field}={name!r}" if field else repr(name)
    return f"unknown {self.kind} {what}; known: {', '.join(map(str, self._entries))}"

  def check(self, name: object, *, field: str) -> None:
    """Raise ``ValueError`` unless ``name`` is registered (used by config validation)."""
    if name not in self._entries:
      raise ValueError(self.unknown(name, field=field))


