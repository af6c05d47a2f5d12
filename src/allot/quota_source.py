"""Which quotas a starting server uses, and where they came from.

The rule (``allot up``):
- ``--quotas FILE``: the file is read and checked, then replaces the quotas in the store;
- ``--quotas default``: the built-in default (one tenant ``default`` with one unconstrained
  queue ``default``) replaces them;
- neither: the store's quotas stay active, as the last start left them; a store that has
  none (the first start) gets the built-in default.

The store keeps the quotas themselves (tenants, queues, cohorts, priority classes, the
half-life), never the file: editing the file changes nothing until it is loaded again. Where
they came from is noted beside the store, in ``<data dir>/quotas-source.json``: the file's
absolute path (null for the built-in default), when it was loaded, and a fingerprint of the
stored quotas. The note is believed only while the fingerprint still matches what the store
holds, so quotas changed by anything else (another server on a shared database) are reported
as of unknown source rather than misattributed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from allot.control.ports import Store
from allot.core.quota.config import QueueSpec, QuotaConfig, TenantSpec

SOURCE_FILE = "quotas-source.json"


def default_quotas() -> QuotaConfig:
    """One tenant ``default`` with one queue ``default`` that any job may use."""
    return QuotaConfig((TenantSpec("default"),), (QueueSpec("default", "default"),))


@dataclass(frozen=True, slots=True)
class ActiveQuotas:
    """The quotas a server runs with. ``file`` is the file they were loaded from (None: the
    built-in default, or ``known`` is False), ``loaded_at`` when (None when not known), and
    ``kept`` says they came from the store as a previous start left them."""

    config: QuotaConfig
    file: Path | None
    loaded_at: float | None
    kept: bool
    known: bool = True

    @property
    def is_default(self) -> bool:
        return self.known and self.file is None


def fingerprint(config: QuotaConfig) -> str:
    """A digest of the quotas as the store gives them back (the store rebuilds them exactly,
    in their saved order, so the same quotas always give the same digest)."""
    return hashlib.sha256(repr(config).encode("utf-8")).hexdigest()


def _write_note(data_dir: Path, file: Path | None, at: float, stored: QuotaConfig) -> None:
    note = {"file": None if file is None else str(file), "loaded_at": at}
    note["fingerprint"] = fingerprint(stored)
    temporary = data_dir / f".{SOURCE_FILE}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(note, handle)
        handle.write("\n")
    os.replace(temporary, data_dir / SOURCE_FILE)  # never a half-written note


def _read_note(data_dir: Path, stored: QuotaConfig) -> ActiveQuotas:
    unknown = ActiveQuotas(stored, None, None, kept=True, known=False)
    try:
        note = json.loads((data_dir / SOURCE_FILE).read_text())
    except (OSError, ValueError):
        return unknown
    if not isinstance(note, dict) or note.get("fingerprint") != fingerprint(stored):
        return unknown
    file, at = note.get("file"), note.get("loaded_at")
    if not (file is None or isinstance(file, str)) or not isinstance(at, int | float):
        return unknown
    return ActiveQuotas(stored, None if file is None else Path(file), float(at), kept=True)


def activate(
    store: Store, data_dir: Path, *, loaded: QuotaConfig | None, file: Path | None, at: float
) -> ActiveQuotas:
    """Apply the rule above. ``loaded`` is what ``--quotas`` gave (a checked file's quotas, or
    the default), with ``file`` the file it came from; None when ``--quotas`` was not given."""
    if loaded is None:
        stored = store.quotas()
        if stored.queues:
            return _read_note(data_dir, stored)
        loaded, file = default_quotas(), None
    store.save_quotas(loaded, at=at)
    stored = store.quotas()
    _write_note(data_dir, file, at, stored)
    return ActiveQuotas(stored, file, at, kept=False)
