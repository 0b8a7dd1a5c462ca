"""A case's personal data in and out of its sealed form: the requester, the summary, the timeline
notes and the decline reason (SPEC §6: encrypted at rest). The use cases call this and nothing
else to seal or open a case; who may see the result is decided by `domain.visibility`.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from lhpn_shared.crypto import is_sealed

from .adapters.crypto import CaseTextField, EncryptedValue, FieldCipher, SealedField, TimelineNote
from .models import CaseFields, Requester
from .repository import Sealed, SealedText, StoredCase


@dataclass(frozen=True)
class Opened:
    """A case's personal data in clear, for a caller allowed to see it."""

    summary: str
    requester: Requester | None
    notes: tuple[str | None, ...]
    decline_reason: str | None


class CaseSealer:
    def __init__(self, cipher: FieldCipher) -> None:
        self.cipher = cipher

    def seal_new(self, fields: CaseFields, case_id: UUID) -> Sealed:
        """The personal data of a case being opened (its first timeline entry has no note)."""
        requester = fields.requester
        return Sealed(
            requester=(
                self.cipher.encrypt_requester(requester.model_dump(), case_id=case_id)
                if requester is not None and not requester.is_empty()
                else None
            ),
            summary=(
                self.cipher.encrypt(fields.summary, case_id=case_id, field=CaseTextField.summary)
                if fields.summary
                else None
            ),
            notes=(None,),
        )

    def seal_note(self, case_id: UUID, index: int, note: str | None) -> EncryptedValue | None:
        if note is None:
            return None
        return self.cipher.encrypt(note, case_id=case_id, field=TimelineNote(index))

    def seal_decline_reason(self, case_id: UUID, reason: str) -> EncryptedValue:
        return self.cipher.encrypt(reason, case_id=case_id, field=CaseTextField.decline_reason)

    def open(self, case: StoredCase) -> Opened:
        case_id, sealed = case.case_id, case.sealed
        summary, requester = self.summary_and_requester(case)
        return Opened(
            summary=summary,
            requester=requester,
            notes=tuple(
                self._text(note, case_id, TimelineNote(i)) for i, note in enumerate(sealed.notes)
            ),
            decline_reason=self._text(sealed.decline_reason, case_id, CaseTextField.decline_reason),
        )

    def summary_and_requester(self, case: StoredCase) -> tuple[str, Requester | None]:
        """What a client sent when opening the case (also to recognise a retried POST)."""
        requester = None
        if case.sealed.requester is not None:
            opened = self.cipher.decrypt_requester(case.sealed.requester, case_id=case.case_id)
            requester = Requester.model_validate(opened)
        summary = self._text(case.sealed.summary, case.case_id, CaseTextField.summary)
        return summary or "", requester

    def _text(self, stored: SealedText | None, case_id: UUID, field: SealedField) -> str | None:
        if stored is None:
            return None
        if is_sealed(stored):
            return self.cipher.decrypt(stored, case_id=case_id, field=field)
        return str(stored)  # written in clear before notes were sealed; `reencrypt` seals it
