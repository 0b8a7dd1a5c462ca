"""The generated province, published as events through the real broker, read back over HTTP:
the figures equal the reference computation, and nothing depends on delivery order, repetition
or a rebuild."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO
from typing import Any

import docx
import openpyxl
import pytest
import pytest_asyncio

from aggregation.api import DOCX, XLSX
from aggregation.batch import EVENTS_QUEUE
from aggregation.exports.labels import kind_label, measure_label, vi_number, vi_percent
from aggregation.settings import AggregationSettings
from lhpn_shared.auth import Role
from lhpn_shared.contracts.activities import ActivityKind
from tests.integration.aggregation.conftest import bearer, started
from tests.integration.aggregation.streams import (
    AS_OF,
    PERIODS,
    PLAN_ID,
    answers,
    publish_all,
    roots,
    stream,
    twice_shuffled_per_entity,
    wait_consumed,
)
from tests.support.amqp import purge_queues
from tests.support.infra import DevMongo, RabbitVhost
from tests.unit.aggregation.generated import (
    Figures,
    Generated,
    Raw,
    generate,
    raw,
    reference_case_stats,
    reference_compliance,
    reference_indicators,
    reference_rates,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
SEED = 20210


@dataclass
class Province:
    """The generated province, consumed in order into a read model of its own."""

    generated: Generated
    events: Raw
    settings: AggregationSettings
    admin: dict[str, str]
    answers: dict[str, Any]
    """every answer `streams.answers` collects, right after the stream was consumed"""
    rabbit: RabbitVhost
    answered_at: datetime
    """when they were asked (cases are counted overdue as of then)"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def province(devmongo: DevMongo, rabbit: RabbitVhost) -> AsyncIterator[Province]:
    generated = generate(SEED)
    settings = AggregationSettings(
        mongo_url=devmongo.url,
        rabbit_url=rabbit.url_for("aggregation"),
        mongo_db=f"t_{uuid.uuid4().hex[:12]}",
        mongo_timeout_ms=1500,
    )
    admin = bearer(settings, Role.admin)
    await purge_queues(rabbit.url, EVENTS_QUEUE)
    published = stream(generated)
    async with started(settings) as client:
        await publish_all(rabbit, published)
        await wait_consumed(client, len(published))
        answered_at = datetime.now(UTC)
        before = await answers(client, admin, generated)
    yield Province(generated, raw(generated.events), settings, admin, before, rabbit, answered_at)


def ids(units: list[dict]) -> list[str]:
    return [u["unit_id"] for u in units]


def _percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 2) if whole else None


async def test_the_generated_province_through_the_broker_gives_the_reference_figures_for_the_province_and_every_district(  # noqa: E501
    province: Province,
) -> None:
    generated, events, got_all = province.generated, province.events, province.answers

    for root in roots(generated):
        for as_of in AS_OF:
            got = got_all[f"compliance {root} {as_of}"]
            reference = reference_compliance(generated.units, generated.plan, root, as_of, events)
            assert [t["code"] for t in got["targets"]] == list(reference)
            for target in got["targets"]:
                expected = reference[target["code"]]
                where = (root, as_of, target["code"])
                assert (target["in_scope"], target["met"]) == (expected.total, expected.good), where
                assert target["percent"] == _percent(expected.good, expected.total), where
                assert ids(target["not_met"]) == expected.bad, where
                with_scope = {c for c, f in expected.children.items() if f.total}
                assert {c["unit_id"] for c in target["children"]} == with_scope, where
                for child in target["children"]:
                    mine = expected.children[child["unit_id"]]
                    assert (child["in_scope"], child["met"]) == (mine.total, mine.good), where
                    assert ids(child["not_met"]) == mine.bad, where

        for schedule in generated.plan.report_schedules:
            for p in schedule.periods:
                got = got_all[f"rates {root} {schedule.report_type} {p.period}"]
                expected_rates = reference_rates(
                    generated.units, generated.plan, root, schedule.report_type, p.period, events
                )
                assert_rates(got, expected_rates)
                with_scope = {c for c, f in expected_rates.children.items() if f.total}
                assert {c["unit_id"] for c in got["children"]} == with_scope
                for child in got["children"]:
                    assert_rates(child, expected_rates.children[child["unit_id"]])

        for period in PERIODS:
            got = got_all[f"indicators {root} {period}"]
            expected_totals = reference_indicators(generated.units, root, period, events)
            assert got["reports"] == expected_totals.reports, (root, period)
            by_code = {row["code"]: row for row in got["rows"]}
            assert set(expected_totals.declared) <= set(by_code)
            for code, row in by_code.items():
                assert (row["recorded"], row["declared"]) == (
                    expected_totals.recorded.get(code, 0),
                    expected_totals.declared.get(code),
                ), (root, period, code)
            for totals in got["kinds"]:
                assert totals["activities"] == expected_totals.activities.get(totals["kind"], 0)

            cases = got_all[f"cases {root} {period}"]
            expected_cases = reference_case_stats(
                generated.units, root, period, events, province.answered_at
            )
            assert (cases["received"], cases["overdue"]) == (
                expected_cases["received"],
                expected_cases["overdue"],
            )
            for name in ("by_kind", "by_topic", "by_status", "by_outcome", "by_flag"):
                assert {k: n for k, n in cases[name].items() if n} == dict(expected_cases[name])


def assert_rates(got: dict, expected: Figures) -> None:
    assert (got["expected"], got["received"], got["on_time"]) == (
        expected.total,
        expected.good,
        expected.on_time,
    )
    assert got["reporting_rate"] == _percent(expected.good, expected.total)
    assert got["on_time_rate"] == _percent(expected.on_time, expected.total)
    assert ids(got["missing"]) == expected.bad
    assert ids(got["late"]) == expected.late


@pytest.mark.slow
async def test_the_same_stream_delivered_twice_and_shuffled_per_entity_gives_identical_answers(
    province: Province,
) -> None:
    twice = province.settings.model_copy(update={"mongo_db": f"t_{uuid.uuid4().hex[:12]}"})
    events = twice_shuffled_per_entity(stream(province.generated), seed=SEED)
    await purge_queues(province.rabbit.url, EVENTS_QUEUE)
    async with started(twice) as client:
        await publish_all(province.rabbit, events)
        await wait_consumed(client, len(events))
        again = await answers(client, province.admin, province.generated)
    assert again.keys() == province.answers.keys()
    for key, answer in province.answers.items():
        assert again[key] == answer, key


def rows_of(sheet: Any) -> list[dict[str, Any]]:
    header, *rows = sheet.iter_rows(values_only=True)
    return [dict(zip(header, row, strict=True)) for row in rows]


async def test_the_compliance_and_indicator_workbooks_hold_the_numbers_of_the_json(
    province: Province,
) -> None:
    as_of = AS_OF[1]
    async with started(province.settings) as client:
        compliance_xlsx = await client.get(
            "/api/v1/exports/compliance.xlsx",
            params={"plan_id": PLAN_ID, "unit_id": "54", "as_of": as_of.isoformat()},
            headers=province.admin,
        )
        indicators_xlsx = await client.get(
            "/api/v1/exports/indicators.xlsx",
            params={"unit_id": "54", "period": "2021-H1"},
            headers=province.admin,
        )
    assert compliance_xlsx.status_code == 200, compliance_xlsx.text
    assert compliance_xlsx.headers["content-type"].startswith(XLSX)
    assert "attachment" in compliance_xlsx.headers["content-disposition"]
    book = openpyxl.load_workbook(BytesIO(compliance_xlsx.content))
    json_result = province.answers[f"compliance 54 {as_of}"]
    summary = rows_of(book["Tổng hợp"])
    assert [r["Mã chỉ tiêu"] for r in summary] == [t["code"] for t in json_result["targets"]]
    for row, target in zip(summary, json_result["targets"], strict=True):
        assert (row["Số đơn vị thuộc phạm vi"], row["Số đơn vị đạt"]) == (
            target["in_scope"],
            target["met"],
        )
        assert round(100 * row["Tỷ lệ đạt"], 2) == target["percent"]
        per_unit = rows_of(book[target["code"]])
        assert len(per_unit) == target["in_scope"]
        behind = [r["Mã đơn vị"] for r in per_unit if r["Kết quả"] == "Chưa đạt"]
        assert behind == ids(target["not_met"])
    by_child = rows_of(book["Theo đơn vị trực thuộc"])
    for target in json_result["targets"]:
        for child in target["children"]:
            row = next(
                r
                for r in by_child
                if r["Mã chỉ tiêu"] == target["code"] and r["Mã đơn vị"] == child["unit_id"]
            )
            assert (row["Tên đơn vị"], row["Số đơn vị thuộc phạm vi"], row["Số đơn vị đạt"]) == (
                child["name"],
                child["in_scope"],
                child["met"],
            )

    assert indicators_xlsx.status_code == 200, indicators_xlsx.text
    sheet = rows_of(openpyxl.load_workbook(BytesIO(indicators_xlsx.content))["Chỉ số"])
    json_rows = province.answers["indicators 54 2021-H1"]["rows"]
    assert [r["Mã chỉ số"] for r in sheet] == [r["code"] for r in json_rows]
    for row, expected in zip(sheet, json_rows, strict=True):
        assert (row["Theo hoạt động đã ghi nhận"], row["Theo báo cáo"]) == (
            expected["recorded"],
            expected["declared"],
        )


async def test_the_thematic_report_opens_with_its_diacritics_and_the_numbers_of_the_json(
    province: Province,
) -> None:
    as_of = AS_OF[2]
    async with started(province.settings) as client:
        response = await client.get(
            "/api/v1/exports/thematic-report.docx",
            params={"plan_id": PLAN_ID, "unit_id": "54", "as_of": as_of.isoformat()},
            headers=province.admin,
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(DOCX)
    document = docx.Document(BytesIO(response.content))
    header, targets_table, rates_table, indicators_table, signature = document.tables
    left, right = (cell.text for cell in header.rows[0].cells)
    assert "HỘI LHPN TỈNH PHÚ YÊN" in left and "BAN THƯỜNG VỤ" in left
    assert "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" in right
    assert "Độc lập – Tự do – Hạnh phúc" in right
    assert "Phú Yên, ngày 01 tháng 01 năm 2022" in right
    text = "\n".join(p.text for p in document.paragraphs)
    assert "I. KẾT QUẢ THỰC HIỆN CÁC CHỈ TIÊU" in text
    assert "Hội LHPN tỉnh Phú Yên" in text

    compliance_json = province.answers[f"compliance 54 {as_of}"]
    for target, row in zip(compliance_json["targets"], targets_table.rows[1:], strict=True):
        figures = f"{vi_number(target['met'])}/{vi_number(target['in_scope'])} đơn vị đạt"
        assert f"{figures} ({vi_percent(target['percent'])}" in text
        cells = [c.text for c in row.cells]
        assert cells[2:5] == [
            vi_number(target["in_scope"]),
            vi_number(target["met"]),
            vi_percent(target["percent"]),
        ]
        for child in target["children"]:  # the units behind, counted per district
            if child["in_scope"] > child["met"]:
                behind = vi_number(child["in_scope"] - child["met"])
                assert f"{child['name']}: {behind}" in cells[5], (target["code"], cells[5])

    rates_json = [
        province.answers[f"rates 54 {s.report_type} {p.period}"]
        for s in province.generated.plan.report_schedules
        for p in s.periods
    ]
    assert len(rates_table.rows) == len(rates_json) + 1
    for rates, row in zip(rates_json, rates_table.rows[1:], strict=True):
        assert [c.text for c in row.cells][1:6] == [
            rates["title"],
            rates["period"],
            vi_number(rates["expected"]),
            vi_number(rates["received"]),
            vi_number(rates["on_time"]),
        ]

    recorded = {
        (r.cells[0].text, r.cells[1].text): r.cells[2].text for r in indicators_table.rows[1:]
    }
    for row in province.answers["indicators 54 2021"]["rows"]:
        if row["kind"] and row["recorded"]:
            key = (
                kind_label(ActivityKind(row["kind"])),
                measure_label(row["kind"], row["measure"]),
            )
            assert recorded[key] == vi_number(row["recorded"]), row["code"]
    assert "TM. BAN THƯỜNG VỤ" in signature.rows[0].cells[1].text


async def test_the_thematic_report_s_number_date_and_signer_are_set_by_the_request(
    province: Province,
) -> None:
    params = {
        "plan_id": PLAN_ID,
        "unit_id": "54",
        "as_of": AS_OF[2].isoformat(),
        "number": "118/BC-BTV",
        "dated_on": "2021-10-27",
        "signer_name": "Trần Thị Thu",
        "signer_title": "Phó Chủ tịch Thường trực",
    }
    async with started(province.settings) as client:
        response = await client.get(
            "/api/v1/exports/thematic-report.docx", params=params, headers=province.admin
        )
        refused = await client.get(
            "/api/v1/exports/thematic-report.docx",
            params={**params, "dated_on": "27/10/2021"},
            headers=province.admin,
        )
    assert response.status_code == 200, response.text
    document = docx.Document(BytesIO(response.content))
    left, right = (cell.text for cell in document.tables[0].rows[0].cells)
    assert "Số: 118/BC-BTV" in left
    assert "Phú Yên, ngày 27 tháng 10 năm 2021" in right
    signed = document.tables[-1].rows[0].cells[1].text
    assert "PHÓ CHỦ TỊCH THƯỜNG TRỰC" in signed and "Trần Thị Thu" in signed
    assert refused.status_code == 422 and "dated_on" in refused.text


async def test_rebuild_from_the_archive_gives_identical_answers(province: Province) -> None:
    settings = province.settings
    env = {
        **os.environ,
        "MONGO_URL": settings.mongo_url,
        "MONGO_DB": settings.mongo_db,
        "RABBIT_URL": settings.rabbit_url,
    }
    rebuild = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aggregation", "rebuild", env=env
    )
    assert await asyncio.wait_for(rebuild.wait(), timeout=240) == 0

    async with started(settings) as client:
        after = await answers(client, province.admin, province.generated)
    assert after.keys() == province.answers.keys()
    for key, answer in province.answers.items():
        assert after[key] == answer, key
