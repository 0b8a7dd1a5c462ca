"""`lhpn docs`: write (or check) the OpenAPI and AsyncAPI documents under docs/api/."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from .apidocs import generate
from .common import console


def docs(
    output: Annotated[
        Path, typer.Option(help="Where the documents go (the repository's docs/api).")
    ] = Path("docs/api"),
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Write nothing: fail (exit status 1) if a document there differs from the code.",
        ),
    ] = False,
) -> None:
    """Generate each service's OpenAPI and AsyncAPI documents from the code into docs/api/."""
    documents = asyncio.run(generate())
    stale = [
        name
        for name, text in documents.items()
        if not (output / name).exists() or (output / name).read_text(encoding="utf-8") != text
    ]
    extra = (
        sorted(p.name for p in output.glob("*.json") if p.name not in documents)
        if output.exists()
        else []
    )
    if check:
        if stale or extra:
            console.print(
                "[red]Tài liệu API không khớp với mã nguồn:[/red] "
                + ", ".join(stale + extra)
                + " — chạy `lhpn docs` (hoặc `make docs`) rồi commit."
            )
            raise typer.Exit(1)
        console.print(f"Tài liệu API trong {output} khớp với mã nguồn ({len(documents)} tệp).")
        return
    output.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (output / name).write_text(documents[name], encoding="utf-8")
    for name in extra:
        (output / name).unlink()
    console.print(
        f"{len(documents)} tài liệu trong {output}: {len(stale)} đã cập nhật, {len(extra)} đã xoá."
    )
