"""The production compose file and its monitoring configs, checked as data.

No Docker engine here, so these read the files the engine and Prometheus and
Grafana would read, and check what the deployment depends on: KRaft without
ZooKeeper, scalable workers, Prometheus finding every worker, and a dashboard
that only queries metrics the workers export.
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

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
METRICS = {
    "lienthong_events_received_total": {"topic", "agency"},
    "lienthong_events_processed_total": {"topic", "agency"},
    "lienthong_events_duplicate_total": {"topic", "agency"},
    "lienthong_events_dead_lettered_total": {"topic"},
    "lienthong_messages_processed_total": {"topic"},
    "lienthong_consumer_lag_messages": {"topic", "partition"},
    "lienthong_processing_latency_seconds": {"le"},
    "lienthong_flags_open": {"type"},
    "lienthong_connector_heartbeat_age_seconds": {"agency"},
    "lienthong_partitions_owned": set(),
    "lienthong_worker_healthy": set(),
    "lienthong_worker_problem": {"kind"},
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
#: Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"instance", "job"}


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


COMPOSE = _yaml(ROOT / "docker-compose.yml")
SERVICES: dict[str, Any] = COMPOSE["services"]
PROMETHEUS = _yaml(DEPLOY / "prometheus.yml")
DASHBOARD = json.loads((DEPLOY / "grafana" / "dashboards" / "lienthong.json").read_text(encoding="utf-8"))


def _env(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment", {})
    assert isinstance(env, dict), f"{service}: environment must be a mapping"
    return {k: str(v) for k, v in env.items()}


def _exprs() -> list[str]:
    return [t["expr"] for p in DASHBOARD["panels"] for t in p.get("targets", [])]


def _metric(name: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and base in METRICS:
            return base
    return name


def test_compose_declares_the_hub_services() -> None:
    assert {"kafka", "worker", "gateway", "prometheus", "grafana"} <= set(SERVICES)


def test_kafka_is_the_official_image_in_kraft_mode_without_zookeeper() -> None:
    env = _env("kafka")
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@127.0.0.1:9093"
    assert "CONTROLLER://127.0.0.1:9093" in env["KAFKA_LISTENERS"]
    assert "CLIENT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert "CONTROLLER" not in env["KAFKA_ADVERTISED_LISTENERS"]
    assert not any("zookeeper" in name.lower() for name in SERVICES)
    assert not any("ZOOKEEPER" in key for key in env)


def test_kafka_single_node_replication_factors_are_one() -> None:
    env = _env("kafka")
    factors = {k: v for k, v in env.items() if "REPLICATION_FACTOR" in k}
    assert "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR" in factors
    assert set(factors.values()) == {"1"}


def test_kafka_keeps_its_data_in_a_named_volume() -> None:
    log_dir = _env("kafka")["KAFKA_LOG_DIRS"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in SERVICES["kafka"]["volumes"]}
    assert mounts[log_dir] in COMPOSE["volumes"]


def test_topics_are_created_after_the_users_and_acls_and_before_workers_and_gateway_start() -> None:
    assert SERVICES["topics"]["depends_on"]["kafka-security"]["condition"] == "service_completed_successfully"
    assert _env("kafka")["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    for service in ("worker", "gateway"):
        assert SERVICES[service]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert "ensure_topics" in " ".join(SERVICES["topics"]["command"])


def test_worker_runs_the_repo_image_against_kafka_on_all_interfaces() -> None:
    worker = SERVICES["worker"]
    assert worker["build"] == "."
    assert worker["command"] == ["worker"]
    env = _env("worker")
    assert env["LIENTHONG_BROKER"] == "kafka:9092"
    assert env["LIENTHONG_WEB_HOST"] == "0.0.0.0"


def test_the_worker_healthcheck_is_its_healthz_which_fails_on_503() -> None:
    test = " ".join(SERVICES["worker"]["healthcheck"]["test"])
    assert "http://127.0.0.1:6066/healthz" in test and "urlopen" in test  # urlopen raises on a 503


def test_workers_publish_no_fixed_host_port_so_they_scale() -> None:
    worker = SERVICES["worker"]
    assert "ports" not in worker
    assert "container_name" not in worker


def test_gateway_publishes_port_6070_and_needs_a_pseudonym_key() -> None:
    gateway = SERVICES["gateway"]
    assert gateway["command"] == ["gateway"]
    assert "6070:6070" in gateway["ports"]
    assert _env("gateway")["LIENTHONG_PSEUDONYM_KEY"].startswith("${LIENTHONG_PSEUDONYM_KEY:?")


def test_dockerfile_installs_the_package_on_python_311_slim() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    assert re.search(r"^RUN pip install \.", text, re.MULTILINE)
    assert 'ENTRYPOINT ["lienthong"]' in text


def test_prometheus_finds_every_worker_replica_by_dns_on_6066() -> None:
    mount = next(v for v in SERVICES["prometheus"]["volumes"] if v.startswith("./deploy/prometheus.yml:"))
    assert mount.split(":")[1] == "/etc/prometheus/prometheus.yml"
    job = next(j for j in PROMETHEUS["scrape_configs"] if j["job_name"] == "lienthong-worker")
    assert job.get("metrics_path", "/metrics") == "/metrics"
    sd = job["dns_sd_configs"][0]
    assert "worker" in sd["names"] and sd["type"] == "A" and sd["port"] == 6066


def test_grafana_datasource_points_at_prometheus_with_the_uid_the_dashboard_uses() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    source = _yaml(provisioning / "datasources" / "prometheus.yml")["datasources"][0]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    uids = {p["datasource"]["uid"] for p in DASHBOARD["panels"]}
    uids |= {t["datasource"]["uid"] for p in DASHBOARD["panels"] for t in p["targets"]}
    assert uids == {source["uid"]}


def test_grafana_loads_the_dashboard_directory_it_is_given() -> None:
    provider = _yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "lienthong.yml")["providers"][0]
    mounts = dict(v.split(":")[:2] for v in SERVICES["grafana"]["volumes"] if v.startswith("./"))
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"


def test_dashboard_queries_only_metrics_the_workers_export() -> None:
    used = {_metric(name) for e in _exprs() for name in re.findall(r"\blienthong_[a-z_]+", e)}
    assert used and used <= set(METRICS), used - set(METRICS)


def test_dashboard_shows_every_exported_metric() -> None:
    used = {_metric(name) for e in _exprs() for name in re.findall(r"\blienthong_[a-z_]+", e)}
    assert used == set(METRICS)


def test_dashboard_groups_only_by_labels_the_metric_has() -> None:
    for expr in _exprs():
        names = {_metric(n) for n in re.findall(r"\blienthong_[a-z_]+", expr)}
        allowed = set().union(*(METRICS[n] for n in names)) | TARGET_LABELS
        for group in re.findall(r"\bby \(([^)]*)\)", expr):
            labels = {label.strip() for label in group.split(",")}
            assert labels <= allowed, (expr, labels - allowed)


# -- the real tools, where this machine has them (Debian: docker-compose, prometheus) ---
@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="needs docker-compose (apt install docker-compose)")
def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials.json"
    credentials.write_text("{}")
    env = {**os.environ, "LIENTHONG_PSEUDONYM_KEY": "k" * 32, "GRAFANA_ADMIN_PASSWORD": "p",
           "LIENTHONG_GATEWAY_CREDENTIALS_FILE": str(credentials), "LIENTHONG_SIGNING_KEYS_FILE": str(credentials),
           **{f"LIENTHONG_KAFKA_PASSWORD_{p.upper()}": "p" for p in PRINCIPALS}}
    result = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool (apt install prometheus)")
def test_promtool_accepts_the_config_and_every_dashboard_query(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
        {"record": f"lienthong:dashboard_query_{i}", "expr": e} for i, e in enumerate(_exprs())
    ]}]}))
    for args in (["check", "config", str(DEPLOY / "prometheus.yml")], ["check", "rules", str(rules)]):
        result = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


# -- Kafka's own access control -------------------------------------------------------
AGENCY_TOPICS = {
    "police": {"lienthong.identity", "lienthong.residence"},
    "social_insurance": {"lienthong.insurance"},
    "health": {"lienthong.health"},
    "justice": {"lienthong.civil-status"},
    "portal": {"lienthong.procedures"},
    "labour": {"lienthong.welfare"},
}
PRINCIPALS = {"admin", "worker", "gateway", "dashboard", *AGENCY_TOPICS}
SECURITY_SCRIPT: str = SERVICES["kafka-security"]["command"][0]


def _acls() -> list[dict[str, Any]]:
    """Each ``acl ...`` line of the security initialiser as principal, operations, topics, groups, pattern."""
    grants = []
    for line in SECURITY_SCRIPT.splitlines():
        words = line.split()
        if not words or words[0] != "acl":
            continue
        grant: dict[str, Any] = {"operations": set(), "topics": set(), "groups": set(), "pattern": "literal"}
        for flag, value in zip(words[1::2], words[2::2], strict=False):
            if flag == "--allow-principal":
                grant["principal"] = value.removeprefix("User:")
            elif flag == "--operation":
                grant["operations"].add(value)
            elif flag == "--topic":
                grant["topics"].add(value)
            elif flag == "--group":
                grant["groups"].add(value)
            elif flag == "--resource-pattern-type":
                grant["pattern"] = value
        grants.append(grant)
    return grants


def _grants(principal: str, operation: str) -> set[str]:
    return {t for g in _acls() if g["principal"] == principal and g["pattern"] == "literal"
            and ({operation, "All"} & g["operations"]) for t in g["topics"]}


def test_kafka_clients_authenticate_with_scram_sha_512_on_the_client_listener() -> None:
    env = _env("kafka")
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert protocols["CLIENT"] == "SASL_PLAINTEXT"
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert env["KAFKA_LISTENER_NAME_CLIENT_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert "ScramLoginModule" in env["KAFKA_LISTENER_NAME_CLIENT_SCRAM___SHA___512_SASL_JAAS_CONFIG"]


def test_every_plaintext_listener_is_loopback_only() -> None:
    env = _env("kafka")
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    for listener in env["KAFKA_LISTENERS"].split(","):
        name, address = listener.split("://")
        if protocols[name] == "PLAINTEXT":
            assert address.startswith("127.0.0.1:"), listener


def test_kafka_authorizes_with_acls_and_denies_what_no_acl_allows() -> None:
    env = _env("kafka")
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert set(env["KAFKA_SUPER_USERS"].split(";")) == {"User:ANONYMOUS", "User:admin"}


def test_the_security_initialiser_creates_a_scram_user_for_every_principal() -> None:
    users = set(re.findall(r"^user (\w+) ", SECURITY_SCRIPT, re.MULTILINE))
    assert users == PRINCIPALS
    assert "SCRAM-SHA-512=[" in SECURITY_SCRIPT
    service = SERVICES["kafka-security"]
    assert service["network_mode"] == "service:kafka" and "B=127.0.0.1:19092" in SECURITY_SCRIPT
    for principal in PRINCIPALS:
        assert _env("kafka-security")[f"PASSWORD_{principal.upper()}"].startswith(
            f"${{LIENTHONG_KAFKA_PASSWORD_{principal.upper()}:?")


def test_each_agency_may_write_only_its_own_topics_and_the_heartbeats() -> None:
    for agency, topics in AGENCY_TOPICS.items():
        assert _grants(agency, "Write") == topics | {"lienthong.heartbeats"}, agency
        assert not _grants(agency, "Read"), agency
        assert not any(g["principal"] == agency and g["pattern"] != "literal" for g in _acls())


def test_the_worker_reads_every_event_topic_and_writes_only_its_outputs() -> None:
    from schemas.topics import AGGREGATES, ALERTS, AUDIT, DEADLETTER, EVENT_TOPICS

    assert _grants("worker", "Read") >= set(EVENT_TOPICS)
    assert _grants("worker", "Write") == {DEADLETTER, ALERTS, AGGREGATES, AUDIT}
    [internal] = [g for g in _acls() if g["principal"] == "worker" and g["pattern"] == "prefixed"]
    assert internal["topics"] == {"lienthong-"} and internal["groups"] == {"lienthong"}  # Faust changelog, group


def test_the_dashboard_principal_only_reads() -> None:
    grants = [g for g in _acls() if g["principal"] == "dashboard"]
    assert grants and all(g["operations"] <= {"Read", "Describe"} for g in grants)
    assert _grants("dashboard", "Read") == {"lienthong.aggregates", "lienthong.alerts", "lienthong.audit"}


def test_every_hub_client_service_authenticates_as_its_own_principal() -> None:
    expected = {"topics": "admin", "worker": "worker", "gateway": "gateway"}
    for service, principal in expected.items():
        env = _env(service)
        assert env["LIENTHONG_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
        assert env["LIENTHONG_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert env["LIENTHONG_KAFKA_SASL_USERNAME"] == principal
        assert env["LIENTHONG_KAFKA_SASL_PASSWORD"].startswith(f"${{LIENTHONG_KAFKA_PASSWORD_{principal.upper()}:?")


def test_the_worker_verifies_signatures_with_keys_from_a_secret() -> None:
    env = _env("worker")
    assert "LIENTHONG_VERIFY_SIGNATURES" not in env  # on by default
    assert env["LIENTHONG_SIGNING_KEYS"] == "/run/secrets/signing_keys"
    assert "signing_keys" in SERVICES["worker"]["secrets"] and "signing_keys" in COMPOSE["secrets"]
    assert env["LIENTHONG_PSEUDONYM_KEY"].startswith("${LIENTHONG_PSEUDONYM_KEY:?")


def test_the_audit_topic_is_kept_forever_and_never_compacted() -> None:
    from schemas.topics import AUDIT, TOPIC_CONFIGS

    assert _env("kafka")["KAFKA_LOG_RETENTION_HOURS"] == "-1"
    assert TOPIC_CONFIGS[AUDIT]["cleanup.policy"] == "delete" and TOPIC_CONFIGS[AUDIT]["retention.ms"] == "-1"
