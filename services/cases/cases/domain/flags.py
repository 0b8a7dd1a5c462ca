"""Vulnerability flags of a case (SPEC §6): a closed vocabulary, kept for legal-aid eligibility.

Flags leave the service in events and may be counted in aggregates, so they are codes from this
list and never free text (free text could carry a name). The list follows the people entitled to
legal aid (Luật Trợ giúp pháp lý 2017 art. 7) and the Union's own priorities.
"""

from __future__ import annotations

from enum import StrEnum


class CaseFlag(StrEnum):
    poor_household = "poor_household"
    near_poor_household = "near_poor_household"
    financial_hardship = "financial_hardship"
    ethnic_minority = "ethnic_minority"
    disability = "disability"
    elderly = "elderly"
    child = "child"
    meritorious_person = "meritorious_person"
    domestic_violence_victim = "domestic_violence_victim"
    trafficking_victim = "trafficking_victim"
    hiv = "hiv"


FLAG_LABELS: dict[CaseFlag, str] = {
    CaseFlag.poor_household: "Hộ nghèo",
    CaseFlag.near_poor_household: "Hộ cận nghèo",
    CaseFlag.financial_hardship: "Khó khăn về tài chính",
    CaseFlag.ethnic_minority: "Người dân tộc thiểu số",
    CaseFlag.disability: "Người khuyết tật",
    CaseFlag.elderly: "Người cao tuổi",
    CaseFlag.child: "Trẻ em",
    CaseFlag.meritorious_person: "Người có công với cách mạng",
    CaseFlag.domestic_violence_victim: "Nạn nhân bạo lực gia đình",
    CaseFlag.trafficking_victim: "Nạn nhân mua bán người",
    CaseFlag.hiv: "Người nhiễm HIV",
}


def normalise_flags(flags: list[CaseFlag]) -> list[CaseFlag]:
    """Each flag once, in the vocabulary's order: the same set always compares equal."""
    order = list(CaseFlag)
    return sorted(set(flags), key=order.index)
