"""What the fault suite waits for and what it checks, each check returning the differences it
found (empty: it holds) so that one run reports every one of them at once."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from lhpn_shared.auth import Role
from lhpn_shared.broker import TOPOLOGY
from lhpn_shared.contracts.activities import Activity
from lhpn_shared.contracts.events import ActivityVoided
from tests.faults.driver import Tokens
from tests.faults.recount import Deadlines, Reminder, due_over, of_payload
from tests.faults.stack import SERVICES, FaultStack
from tests.faults.stream import PROVINCE, Stream
from tests.support.http import eventually


async def pages(
    http: httpx.AsyncClient, url: str, headers: dict[str, str], **params: Any
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": 1000, **({"cursor": cursor} if cursor else {})}
        r = await http.get(url, params=query, headers=headers)
        assert r.status_code == 200, (url, r.status_code, r.text[:300])
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return items


# ---- before the stream ------------------------------------------------------------------------


async def reference_data_everywhere(stack: FaultStack, tokens: Tokens, stream: Stream) -> None:
    """Every consumer has the units and the plan intake announced at its start."""
    units = {u.unit_id for u in stream.units}
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.mongo.url)
    try:
        cases_units = client[stack.databases["cases"]]["units"]
        obligations = client[stack.databases["reminders"]]["obligations"]

        async def known() -> bool:
            have = {d["_id"] async for d in cases_units.find({}, {"_id": 1})}
            return units <= have and await obligations.count_documents({}) > 1000

        await eventually(known, timeout=90, interval=0.5)
    finally:
        await client.close()
    async with httpx.AsyncClient(timeout=10) as http:

        async def compliance() -> bool:
            r = await http.get(
                f"{stack.url('aggregation')}/api/v1/compliance",
                params={"plan_id": stream.plan.plan_id, "unit_id": PROVINCE},
                headers=tokens.admin(),
            )
            return r.status_code == 200 and r.json()["targets"][0]["in_scope"] > 0

        await eventually(compliance, timeout=90, interval=0.5)


async def set_contacts(stack: FaultStack, tokens: Tokens, stream: Stream) -> None:
    """Each unit's e-mail address and webhook, at reminders."""
    async with httpx.AsyncClient(timeout=10) as http:
        for unit in stream.units:

            async def put(unit_id: str = unit.unit_id) -> httpx.Response | None:
                r = await http.put(
                    f"{stack.url('reminders')}/api/v1/contacts/{unit_id}",
                    json={
                        "emails": [f"hoi-{unit_id}@lhpn.example.vn"],
                        "webhook_url": stack.webhook.url(unit_id),
                        "webhook_secret": f"bi-mat-cua-don-vi-{unit_id}",
                    },
                    headers=tokens.admin(),
                )
                return None if r.status_code == 503 else r  # its database slow: again

            r = await eventually(put, timeout=60, interval=0.5)
            assert r.status_code == 200, r.text


# ---- settling ---------------------------------------------------------------------------------


async def settled(stack: FaultStack, within: float = 300) -> float:
    """Wait until every consumer queue is empty with nothing unacknowledged and no service
    has an outbox left to publish — twice in a row, a second apart. Returns the seconds it took."""
    began = time.monotonic()
    quiet_once = False
    last: Any = None
    while time.monotonic() - began < within:
        try:
            stats = await asyncio.to_thread(stack.queue_stats)
        except RuntimeError:  # the CLI did not answer in time: ask again
            stats = None
        busy = (
            {q: s for q, s in stats.items() if q in TOPOLOGY and (s.ready or s.unacked)}
            if stats is not None
            else {"?": "no answer"}
        )
        outbox = await stack.pending_outbox() if not busy else {}
        last = (busy, outbox)
        if not busy and not outbox:
            if quiet_once:
                return time.monotonic() - began
            quiet_once = True
        else:
            quiet_once = False
        await asyncio.sleep(1.0)
    raise AssertionError(f"not settled after {within:g} s: queues {last[0]}, outboxes {last[1]}")


# ---- what is stored ---------------------------------------------------------------------------


async def check_intake(stack: FaultStack, tokens: Tokens, stream: Stream) -> list[str]:
    """Every activity and report the stream sent is stored once, as the stream left it; nothing
    refused over HTTP is."""
    problems: list[str] = []
    async with httpx.AsyncClient(timeout=60) as http:
        url = stack.url("intake")
        stored = await pages(http, f"{url}/api/v1/activities", tokens.admin(), include_voided=True)
        reports = await pages(http, f"{url}/api/v1/reports", tokens.admin())
    ids = Counter(a["activity_id"] for a in stored)
    doubled = [i for i, n in ids.items() if n > 1]
    if doubled:
        problems.append(f"intake: {len(doubled)} activities listed more than once: {doubled[:3]}")
    by_id = {a["activity_id"]: a for a in stored}
    expected = stream.expected.activities
    missing = sorted(set(expected) - set(by_id))
    extra = sorted(set(by_id) - set(expected))
    if missing:
        problems.append(f"intake: {len(missing)} activities missing, e.g. {missing[:3]}")
    if extra:
        problems.append(f"intake: {len(extra)} activities nobody sent, e.g. {extra[:3]}")
    wrong = []
    for activity_id, final in expected.items():
        got = by_id.get(activity_id)
        if got is None:
            continue
        if isinstance(final, ActivityVoided):
            if not got["voided"]:
                wrong.append(f"{activity_id} not voided")
            continue
        assert isinstance(final, Activity)
        want = final.model_dump(mode="json", include={"unit_id", "kind", "occurred_on", "metrics"})
        have = {k: got[k] for k in want}
        if got["voided"] or have != want:
            wrong.append(f"{activity_id}: stored {have} voided={got['voided']}, sent {want}")
    if wrong:
        problems.append(f"intake: {len(wrong)} activities not as last sent: {wrong[:3]}")
    refused = set(stream.expected.refused_over_http)
    if refused & set(by_id):
        problems.append(f"intake: activities refused with 422 were stored: {refused & set(by_id)}")
    keys = Counter((r["unit_id"], r["report_type"], r["period"]) for r in reports)
    if any(n > 1 for n in keys.values()):
        problems.append("intake: a report stored more than once")
    want_reports = stream.expected.reports
    if set(keys) != set(want_reports):
        problems.append(
            f"intake: reports missing {len(set(want_reports) - set(keys))}, "
            f"not sent {len(set(keys) - set(want_reports))}"
        )
    for r in reports:
        want = want_reports.get((r["unit_id"], r["report_type"], r["period"]))
        if want is None:
            continue
        received = datetime.fromisoformat(r["received_at"])
        if r["indicators"] != want.indicators or received != want.received_at:
            problems.append(
                f"intake: report {r['unit_id']} {r['report_type']} {r['period']}: stored "
                f"{r['indicators']} received {received}, sent {want.indicators} "
                f"received {want.received_at}"
            )
            break
    return problems


async def stored_cases(stack: FaultStack, tokens: Tokens) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=60) as http:
        return await pages(http, f"{stack.url('cases')}/api/v1/cases", tokens.admin())


def check_cases(cases: list[dict[str, Any]], stream: Stream) -> list[str]:
    """Every case once, in the status its transitions left it, each transition applied once
    (its revision: the opening plus one per transition)."""
    problems = []
    ids = Counter(c["case_id"] for c in cases)
    if any(n > 1 for n in ids.values()):
        problems.append("cases: a case listed more than once")
    by_id = {c["case_id"]: c for c in cases}
    expected = stream.expected.cases
    if set(by_id) != set(expected):
        problems.append(
            f"cases: missing {sorted(set(expected) - set(by_id))[:3]}, "
            f"not sent {sorted(set(by_id) - set(expected))[:3]}"
        )
    wrong = []
    for case_id, (facts, path) in expected.items():
        got = by_id.get(case_id)
        if got is None:
            continue
        want = (path[-1] if path else "received", 1 + len(path), facts.kind.value)
        have = (got["status"], got["revision"], got["kind"])
        if have != want:
            wrong.append(f"{case_id}: {have}, sent {want}")
    if wrong:
        problems.append(f"cases: {len(wrong)} not as the stream left them: {wrong[:3]}")
    return problems


# ---- queues and dead letters ------------------------------------------------------------------


async def check_dead_letters(stack: FaultStack, tokens: Tokens, stream: Stream) -> list[str]:
    """Every consumer queue empty; the DLQs hold exactly the bad messages, each with its
    reason — as the services' own dead-letter routes list and show them (what `lhpn
    dead-letters` uses), which also leaves them where they are."""
    problems = []
    stats = await asyncio.to_thread(stack.queue_stats)
    busy = {q: s for q, s in stats.items() if not q.endswith(".dlq") and (s.ready or s.unacked)}
    if busy:
        problems.append(f"queues not empty: {busy}")
    expected = {(d.queue, d.message_id): d.reason for d in stream.expected.dead_letters}
    listed = await dead_letter_counts(stack, tokens)
    async with httpx.AsyncClient(timeout=60) as http:
        shown: Counter[tuple[str, str]] = Counter()
        for (queue, message_id), reason in expected.items():
            service = queue.split(".", 1)[0]
            r = await http.get(
                f"{stack.url(service)}/api/v1/dead-letters/{queue}/{message_id}",
                headers=tokens.admin(),
            )
            if r.status_code == 404:
                problems.append(f"dead letter missing: {queue} {message_id} ({reason})")
                continue
            assert r.status_code == 200, r.text
            got = r.json()["reason"]
            shown[(queue, got)] += 1
            if reason not in got:
                problems.append(f"dead letter {queue} {message_id}: reason {got!r}, not {reason!r}")
    extra = Counter(listed) - shown
    if extra:
        problems.append(f"dead letters nobody expected: {dict(extra)}")
    return problems


async def dead_letter_counts(stack: FaultStack, tokens: Tokens) -> Counter[tuple[str, str]]:
    """(queue, reason) → messages, as every service lists its DLQs."""
    out: Counter[tuple[str, str]] = Counter()
    async with httpx.AsyncClient(timeout=60) as http:
        for service in SERVICES:
            r = await http.get(f"{stack.url(service)}/api/v1/dead-letters", headers=tokens.admin())
            assert r.status_code == 200, r.text
            for queue in r.json()["queues"]:
                for reason in queue["reasons"]:
                    out[(queue["queue"], reason["reason"])] += reason["messages"]
    return out


def lhpn(stack: FaultStack, *args: str) -> str:
    """The operator command, as a process, against the stack (signed in as the development
    admin); its standard output."""
    env = {**os.environ, **{f"LHPN_{s.upper()}_URL": stack.url(s) for s in SERVICES}}
    done = subprocess.run(
        [sys.executable, "-m", "lhpn_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"lhpn {' '.join(args)}: {done.returncode} {done.stderr[-2000:]}"
    return done.stdout


async def check_operator_command(stack: FaultStack, tokens: Tokens) -> list[str]:
    """`lhpn dead-letters list` gives what the services list; a replay of the sealed letter
    (personal data sent by another system) through `lhpn dead-letters replay` is opened, refused
    by cases again for the same reason, and back in its DLQ, sealed again — nothing else moves."""
    before = await dead_letter_counts(stack, tokens)
    listed = json.loads(await asyncio.to_thread(lhpn, stack, "dead-letters", "list", "--json"))
    from_cli = Counter(
        {(q["queue"], r["reason"]): r["messages"] for q in listed for r in q["reasons"]}
    )
    problems = []
    if from_cli != before:
        problems.append(f"lhpn dead-letters list: {dict(from_cli)}, the services: {dict(before)}")
    await asyncio.to_thread(
        lhpn, stack, "dead-letters", "replay", "cases.inbound", "--reason", "invalid data"
    )

    async def back() -> bool:
        return await dead_letter_counts(stack, tokens) == before

    try:
        await eventually(back, timeout=60, interval=0.5)
    except AssertionError:
        after = await dead_letter_counts(stack, tokens)
        problems.append(f"after a replay: {dict(after)}, before: {dict(before)}")
    return problems


# ---- reminders --------------------------------------------------------------------------------


def open_deadlines(cases: list[dict[str, Any]]) -> Deadlines:
    return {
        c["case_id"]: (
            c["unit_id"],
            [(d["name"], datetime.fromisoformat(d["due_at"])) for d in c["deadlines"]],
        )
        for c in cases
        if c["status"] != "closed"
    }


async def sweep(stack: FaultStack, tokens: Tokens, as_of: datetime) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=600) as http:
        r = await http.post(
            f"{stack.url('reminders')}/api/v1/sweeps",
            json={"as_of": as_of.isoformat()},
            headers=tokens.of(Role.admin),
        )
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


async def deliveries_final(stack: FaultStack, within: float = 300) -> int:
    """Wait until no delivery is pending or being retried; returns how many there are."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.mongo.url)
    try:
        send_log = client[stack.databases["reminders"]]["send_log"]

        async def final() -> int | None:
            open_ = await send_log.count_documents({"next_attempt_at": {"$ne": None}})
            return None if open_ else await send_log.count_documents({})

        total: int = await eventually(final, timeout=within, interval=0.5)
        return total
    finally:
        await client.close()


def check_deliveries(
    stack: FaultStack, stream: Stream, instants: list[datetime], deadlines: Deadlines
) -> tuple[list[str], dict[str, int]]:
    """Every reminder due was delivered exactly once by e-mail and once by webhook."""
    problems = []
    hooks = stack.webhook.received
    mails = stack.mail.mails()
    by_send: dict[str, Reminder] = {}
    hook_sends = Counter(str(p["notification_id"]).rsplit(":", 1)[0] for p in hooks)
    mail_sends = Counter(m.notification_id.rsplit(":", 1)[0] for m in mails)
    for payload in hooks:
        by_send[str(payload["notification_id"]).rsplit(":", 1)[0]] = of_payload(payload)
    twice_hook = [s for s, n in hook_sends.items() if n > 1]
    twice_mail = [s for s, n in mail_sends.items() if n > 1]
    if twice_hook:
        problems.append(f"reminders: {len(twice_hook)} webhooks delivered more than once")
    if twice_mail:
        problems.append(f"reminders: {len(twice_mail)} e-mails delivered more than once")
    if set(hook_sends) != set(mail_sends):
        problems.append(
            f"reminders: {len(set(hook_sends) - set(mail_sends))} sends without their e-mail, "
            f"{len(set(mail_sends) - set(hook_sends))} without their webhook"
        )
    got = Counter(by_send.values())
    if any(n > 1 for n in got.values()):
        problems.append("reminders: the same reminder sent under two send ids")
    want = due_over(stream, instants, deadlines)
    missing, extra = want - set(got), set(got) - want
    if missing:
        problems.append(
            f"reminders: {len(missing)} due and not delivered, e.g. {sorted(missing)[:3]}"
        )
    if extra:
        problems.append(f"reminders: {len(extra)} delivered and not due, e.g. {sorted(extra)[:3]}")
    figures = {
        "reminders due": len(want),
        "e-mails": len(mails),
        "webhooks": len(hooks),
        "webhook 500s": stack.webhook.refused,
    }
    return problems, figures
