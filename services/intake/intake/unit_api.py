"""HTTP routes for the unit tree over time (SPEC §9.2 "added since the first version").

Reading: a unit's lineage. Changing (admins): create, rename, close, merge, split — each with an
effective date — a whole reorganisation at once, and loads of reference data (the operator
command `lhpn units load` uses them). Every change is `UnitRegistry.reorganise` or
`load_units`: one change document, its `unit.upserted` events, all or nothing.
"""

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from pydantic import BaseModel, Field, model_validator

from lhpn_shared.access import ADMINS, EVERYONE, READ, WRITE, Guard, Permission
from lhpn_shared.audit import AuditLog
from lhpn_shared.auth import Principal
from lhpn_shared.contracts.units import LineageChange, Unit, UnitLevel
from lhpn_shared.mongo import Doc

from .service import Intake
from .unit_rules import NewUnit, Rename, Reorganisation, Succession, lineage
from .units import MAX_UNITS_PER_CHANGE, ChangeAudit, ChangeRecord

UnitId = Annotated[str, Field(min_length=1, max_length=32)]
PathUnitId = Annotated[str, Path(min_length=1, max_length=32)]
ChangeId = Field(
    default=None,
    pattern=r"^[A-Za-z0-9._:@-]{1,120}$",
    description="chosen by the client: sending the same change again applies it once",
)


class Dated(BaseModel):
    effective_on: date = Field(description="the first day of the new state")
    title: str = Field(default="", max_length=500, description="e.g. the decision's number")
    reorganisation_id: str | None = ChangeId


class CreateUnit(NewUnit, Dated):
    pass


class RenameUnit(Dated):
    name: str = Field(min_length=1, max_length=200)
    kind: str | None = Field(default=None, min_length=1, max_length=50)


class MergeUnits(Dated):
    unit_ids: list[UnitId] = Field(min_length=1, description="the units merged (closed)")
    into_unit_id: UnitId | None = Field(default=None, description="an existing unit that goes on")
    new_unit: NewUnit | None = Field(default=None, description="or a unit the merge creates")

    @model_validator(mode="after")
    def _one_target(self) -> "MergeUnits":
        if (self.into_unit_id is None) == (self.new_unit is None):
            raise ValueError("give either into_unit_id or new_unit")
        return self


class SplitUnit(Dated):
    new_units: list[NewUnit] = Field(default_factory=list, description="units the split creates")
    into_unit_ids: list[UnitId] = Field(
        default_factory=list, description="existing units that take a part"
    )
    keep_open: bool = Field(default=False, description="the unit goes on with what is left")

    @model_validator(mode="after")
    def _parts(self) -> "SplitUnit":
        if len(self.new_units) + len(self.into_unit_ids) + self.keep_open < 2:
            raise ValueError("a split gives at least two parts")
        return self


class UnitLoad(BaseModel):
    units: list[Unit] = Field(min_length=1, max_length=MAX_UNITS_PER_CHANGE)
    replace: bool = Field(
        default=False, description="also give existing units this state (default: keep them)"
    )


class LoadResult(BaseModel):
    created: int
    replaced: int
    unchanged: int
    change_id: str | None


class LineageStep(BaseModel):
    unit_id: str
    name: str | None
    level: UnitLevel | None
    valid_from: date | None
    valid_to: date | None
    on: date = Field(description="the day the change took effect")
    change: LineageChange
    via: str = Field(description="the unit this link starts from (the unit itself when direct)")


class Lineage(BaseModel):
    unit: Unit
    predecessors: list[LineageStep]
    successors: list[LineageStep]


# ---- who may call what (SPEC §9.3) ---------------------------------------------------------
LINEAGE_READ = Permission("units.read", READ, EVERYONE)
UNITS_CHANGE = Permission("units.change", WRITE, ADMINS)
UNITS_CHANGES_READ = Permission("units.changes.read", READ, ADMINS)


def change_audit(log: AuditLog, caller: Principal, kind: str) -> ChangeAudit:
    """The audit record of a unit change (`kind`: reorganisation | load) by `caller`, built
    from its id and its units when it is committed and stored inside its change record: the
    unit it names is the one it changed, none when it changed several."""

    def records(change_id: str, unit_ids: list[str]) -> list[Doc]:
        unit_id = unit_ids[0] if len(unit_ids) == 1 else None
        return [
            log.entry(
                caller, UNITS_CHANGE.name, entity_type=kind, entity_id=change_id, unit_id=unit_id
            )
        ]

    return records


def build_unit_router(guard: Guard) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["units"])
    Caller = Annotated[Principal, guard(UNITS_CHANGE)]

    async def intake(request: Request) -> Intake:
        svc: Intake = request.app.state.intake
        return svc

    Svc = Annotated[Intake, Depends(intake)]

    async def apply(
        svc: Intake, caller: Principal, change: Reorganisation, response: Response
    ) -> ChangeRecord:
        audit = change_audit(svc.audit, caller, "reorganisation")
        record, applied_now = await svc.units.reorganise(change, caller.subject, audit)
        response.status_code = 201 if applied_now else 200
        return record

    def dated(body: Dated) -> dict[str, object]:
        return body.model_dump(include={"effective_on", "title", "reorganisation_id"})

    @router.get("/units/{unit_id}/lineage", response_model=Lineage)
    async def unit_lineage(
        unit_id: PathUnitId, caller: Annotated[Principal, guard(LINEAGE_READ)], svc: Svc
    ) -> Lineage:
        """Predecessors and successors of a unit, transitively, with the day of each change."""
        unit = svc.tree.get(unit_id)
        if unit is None:
            raise HTTPException(404, detail=f"Không có đơn vị mã '{unit_id}'.")
        sides = lineage(svc.tree, unit_id)
        return Lineage(
            unit=unit,
            predecessors=[LineageStep.model_validate(s) for s in sides["predecessors"]],
            successors=[LineageStep.model_validate(s) for s in sides["successors"]],
        )

    @router.post("/units", response_model=ChangeRecord, status_code=201)
    async def create_unit(
        body: CreateUnit, caller: Caller, svc: Svc, response: Response
    ) -> ChangeRecord:
        """A new unit, valid from `effective_on`, under a parent valid that day."""
        new = NewUnit.model_validate(body.model_dump(include=set(NewUnit.model_fields)))
        return await apply(svc, caller, Reorganisation(**dated(body), create=[new]), response)

    @router.post("/units/{unit_id}/rename", response_model=ChangeRecord, status_code=201)
    async def rename_unit(
        unit_id: PathUnitId, body: RenameUnit, caller: Caller, svc: Svc, response: Response
    ) -> ChangeRecord:
        """A new name from `effective_on`; the tree of an earlier day shows the former one."""
        rename = Rename(unit_id=unit_id, name=body.name, kind=body.kind)
        return await apply(svc, caller, Reorganisation(**dated(body), rename=[rename]), response)

    @router.post("/units/{unit_id}/close", response_model=ChangeRecord, status_code=201)
    async def close_unit(
        unit_id: PathUnitId, body: Dated, caller: Caller, svc: Svc, response: Response
    ) -> ChangeRecord:
        """The unit's last day is the eve of `effective_on`; no unit continues it."""
        return await apply(svc, caller, Reorganisation(**dated(body), close=[unit_id]), response)

    @router.post("/units/merge", response_model=ChangeRecord, status_code=201)
    async def merge_units(
        body: MergeUnits, caller: Caller, svc: Svc, response: Response
    ) -> ChangeRecord:
        """Units merged into one: an existing unit that goes on, or a new one."""
        target = body.into_unit_id or (body.new_unit.unit_id if body.new_unit else "")
        change = Reorganisation(
            **dated(body),
            create=[body.new_unit] if body.new_unit else [],
            close=[u for u in body.unit_ids if u != target],
            successions=[
                Succession(predecessor_id=u, successor_id=target)
                for u in body.unit_ids
                if u != target
            ],
        )
        return await apply(svc, caller, change, response)

    @router.post("/units/{unit_id}/split", response_model=ChangeRecord, status_code=201)
    async def split_unit(
        unit_id: PathUnitId, body: SplitUnit, caller: Caller, svc: Svc, response: Response
    ) -> ChangeRecord:
        """A unit divided between new units and/or existing ones."""
        parts = [u.unit_id for u in body.new_units] + body.into_unit_ids
        change = Reorganisation(
            **dated(body),
            create=body.new_units,
            close=[] if body.keep_open else [unit_id],
            successions=[Succession(predecessor_id=unit_id, successor_id=p) for p in parts],
        )
        return await apply(svc, caller, change, response)

    @router.post("/reorganisations", response_model=ChangeRecord, status_code=201)
    async def reorganise(
        body: Reorganisation, caller: Caller, svc: Svc, response: Response
    ) -> ChangeRecord:
        """Many units created, renamed, closed and continued on one day, all or nothing."""
        return await apply(svc, caller, body, response)

    @router.get("/reorganisations/{change_id}", response_model=ChangeRecord)
    async def get_reorganisation(
        change_id: str, caller: Annotated[Principal, guard(UNITS_CHANGES_READ)], svc: Svc
    ) -> ChangeRecord:
        record = await svc.units.get_change(change_id)
        if record is None:
            raise HTTPException(404, detail=f"Không có thay đổi '{change_id}'.")
        return record

    @router.post("/unit-loads", response_model=LoadResult)
    async def load_units(body: UnitLoad, caller: Caller, svc: Svc) -> LoadResult:
        """Reference data (the operator command): missing units are created; existing ones are
        kept unless `replace`."""

        outcome = await svc.units.load_units(
            body.units,
            caller.subject,
            replace=body.replace,
            audit=change_audit(svc.audit, caller, "load"),
        )
        return LoadResult(
            created=outcome.created,
            replaced=outcome.replaced,
            unchanged=outcome.unchanged,
            change_id=outcome.change_id,
        )

    return router
