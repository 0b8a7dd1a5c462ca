"""Re-seal every stored personal value under the newest key, so an old key can be retired
(`python -m cases reencrypt`, README "Rotating the case keys").

- Idempotent: a value already sealed with the first key of `CASE_KEYS` is left as it is, so a
  second run rewrites nothing.
- Resumable: cases are taken in `_id` order, a page at a time; an interrupted run is simply run
  again (or continued after the last case id it logged, `--after`).
- Safe beside the running service: each case is rewritten only if its `revision` is still the
  one read (a change meanwhile re-reads it and tries again); the rewrite changes no revision and
  publishes nothing, since no fact changes.
- Text that an older version kept in clear (timeline notes, a top-level `decline_reason`) is
  sealed on the way.
- A value that opens with none of the keys is counted and named by case id, never shown; the
  command then exits non-zero and the old key must not be dropped.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from lhpn_shared.crypto import DecryptionError, is_sealed
from lhpn_shared.mongo import Doc

from .adapters.crypto import (
    CaseTextField,
    FieldCipher,
    RequesterField,
    SealedField,
    TimelineNote,
)
from .repository import CasesStore

log = logging.getLogger("cases.reencrypt")

ATTEMPTS = 5
"""Tries per case while the service keeps changing it."""


@dataclass
class ReencryptReport:
    current_key: str
    cases_examined: int = 0
    cases_rewritten: int = 0
    values_current: int = 0
    values_resealed: Counter[str] = field(default_factory=Counter)
    """Per old key id: how many values moved to the current key."""
    values_sealed_from_clear: int = 0
    cases_failed: list[str] = field(default_factory=list)
    last_case_id: str | None = None

    @property
    def ok(self) -> bool:
        return not self.cases_failed

    def as_dict(self) -> dict[str, Any]:
        return {
            "current_key": self.current_key,
            "cases_examined": self.cases_examined,
            "cases_rewritten": self.cases_rewritten,
            "values_current": self.values_current,
            "values_resealed": dict(sorted(self.values_resealed.items())),
            "values_sealed_from_clear": self.values_sealed_from_clear,
            "cases_failed": self.cases_failed,
            "last_case_id": self.last_case_id,
        }


@dataclass
class _Plan:
    """What one case needs: the fields to set and unset, and the counts it adds."""

    set: dict[str, Any] = field(default_factory=dict)
    unset: list[str] = field(default_factory=list)
    current: int = 0
    resealed: Counter[str] = field(default_factory=Counter)
    from_clear: int = 0

    def update(self) -> dict[str, Any]:
        update: dict[str, Any] = {}
        if self.set:
            update["$set"] = self.set
        if self.unset:
            update["$unset"] = dict.fromkeys(self.unset, "")
        return update


def plan_case(doc: Doc, cipher: FieldCipher) -> _Plan:
    """The rewrite of one stored case that leaves every value sealed with the current key.
    Raises `DecryptionError` when a value opens with none of the keys."""
    case_id = UUID(doc["_id"])
    plan = _Plan()

    def seal(path: str, value: Any, field: SealedField) -> None:
        if value is None:
            return
        if not is_sealed(value):
            plan.set[path] = cipher.encrypt(str(value), case_id=case_id, field=field)
            plan.from_clear += 1
        elif cipher.needs_rotation(value):
            plan.set[path] = cipher.rotate(value, case_id=case_id, field=field)
            plan.resealed[str(value.get("kid"))] += 1
        else:
            plan.current += 1

    sealed: Mapping[str, Any] = doc.get("sealed") or {}
    for name, value in (sealed.get("requester") or {}).items():
        seal(f"sealed.requester.{name}", value, RequesterField(name))
    seal("sealed.summary", sealed.get("summary"), CaseTextField.summary)
    if sealed.get("decline_reason") is not None:
        seal("sealed.decline_reason", sealed["decline_reason"], CaseTextField.decline_reason)
    elif doc.get("decline_reason") is not None:  # kept in clear by an older version
        seal("sealed.decline_reason", doc["decline_reason"], CaseTextField.decline_reason)
    if "decline_reason" in doc:
        plan.unset.append("decline_reason")
    for index, entry in enumerate(doc.get("timeline", [])):
        seal(f"timeline.{index}.note", entry.get("note"), TimelineNote(index))
    return plan


async def reencrypt(
    store: CasesStore,
    cipher: FieldCipher,
    *,
    batch: int = 200,
    after: str | None = None,
    progress: Callable[[ReencryptReport], None] | None = None,
) -> ReencryptReport:
    """Re-seal every case after `after` (all when None); see the module's docstring."""
    report = ReencryptReport(current_key=cipher.current_kid)
    cursor = after
    while True:
        query: Doc = {"_id": {"$gt": cursor}} if cursor is not None else {}
        docs = await store.cases.find(query, {"outbox": 0}).sort("_id", 1).to_list(batch)
        if not docs:
            break
        for doc in docs:
            await _reencrypt_case(store, cipher, doc, report)
            report.last_case_id = cursor = doc["_id"]
        log.info("reencrypt progress", extra=report.as_dict())
        if progress is not None:
            progress(report)
    return report


async def _reencrypt_case(
    store: CasesStore, cipher: FieldCipher, doc: Doc, report: ReencryptReport
) -> None:
    report.cases_examined += 1
    for _ in range(ATTEMPTS):
        try:
            plan = plan_case(doc, cipher)
        except DecryptionError as exc:
            # the message names case, field and key id only
            log.error("a value of a case opens with no key", extra={"error": str(exc)})
            report.cases_failed.append(doc["_id"])
            return
        update = plan.update()
        if update:
            result = await store.cases.update_one(
                {"_id": doc["_id"], "revision": doc.get("revision")}, update
            )
            if result.matched_count == 0:  # changed meanwhile: read it again
                fresh = await store.cases.find_one({"_id": doc["_id"]}, {"outbox": 0})
                if fresh is None:
                    return
                doc = fresh
                continue
            report.cases_rewritten += 1
        report.values_current += plan.current
        report.values_resealed.update(plan.resealed)
        report.values_sealed_from_clear += plan.from_clear
        return
    log.error("a case kept changing, not rewritten", extra={"case_id": doc["_id"]})
    report.cases_failed.append(doc["_id"])
