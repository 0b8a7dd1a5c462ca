"""The .xlsx and .docx exports of aggregation, passed on to the browser with the user's token."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from ..web import Api, User

router = APIRouter()

EXPORTS = {
    "tuan-thu.xlsx": ("/api/v1/exports/compliance.xlsx", ("plan_id", "unit_id", "as_of")),
    "chi-so.xlsx": ("/api/v1/exports/indicators.xlsx", ("period", "unit_id", "report_type")),
    "bao-cao-chuyen-de.docx": (
        "/api/v1/exports/thematic-report.docx",
        ("plan_id", "unit_id", "as_of"),
    ),
}


@router.get("/xuat/{name}")
async def export(request: Request, name: str, user: User, api: Api) -> Response:
    if name not in EXPORTS:
        raise HTTPException(404)
    path, allowed = EXPORTS[name]
    params = {k: v for k, v in request.query_params.items() if k in allowed and v}
    answer = await api.export("aggregation", path, token=user.token, params=params)
    headers = {"Content-Disposition": answer.headers.get("content-disposition", "attachment")}
    return Response(
        answer.content,
        media_type=answer.headers.get("content-type", "application/octet-stream"),
        headers=headers,
    )
