"""The observability pack (manifests/components/observability), read from its files: every expression
parses as PromQL (a real parser, with PromQL's type checks), the objects have the shape the
Prometheus Operator's monitoring.coreos.com/v1 API defines, and the ServiceMonitors select Services
and ports that manifests/base really has.

That every metric and label used is exported by a running operator and ``serve`` is checked in
tests/e2e/test_observability.py; the kustomize rendering and a server dry run in
tests/e2e/test_manifests.py.
"""

from __future__ import annotations

import re
from typing import Any

import promql_parser
import pytest
import yaml
from connectrpc.code import Code

from tests import observability_pack as pack
from tests.conftest import ROOT

SEVERITIES = {"critical", "warning", "info"}
# Fields of the Prometheus Operator's API (monitoring.coreos.com/v1) used here; anything else in
# these objects would be a typo the Prometheus Operator drops or refuses.
RULE_FIELDS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
GROUP_FIELDS = {"name", "interval", "rules", "limit", "partial_response_strategy", "query_offset"}
ENDPOINT_FIELDS = {"port", "targetPort", "path", "scheme", "interval", "scrapeTimeout", "honorLabels"}
SERVICE_MONITOR_SPEC_FIELDS = {"selector", "namespaceSelector", "endpoints", "jobLabel"}
RECORD_NAME = re.compile(r"^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$")  # level:metric:operations


def docs(path: Any) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def base_services() -> list[dict[str, Any]]:
    out = []
    for path in (ROOT / "manifests" / "base").glob("*.yaml"):
        out += [d for d in docs(path) if d.get("kind") == "Service"]
    return out


@pytest.mark.parametrize("query", pack.queries(), ids=lambda q: q.where)
def test_every_rule_and_panel_query_parses_as_promql(query: pack.Query) -> None:
    query.parse()


def test_the_parser_is_a_real_one_refusing_what_prometheus_refuses() -> None:
    for bad, why in [
        ("rate(taskaction_tracked_objects)", "expected type matrix"),
        ("sum by (le) (x", "unclosed left parenthesis"),
        ("histogram_quantile(x)", "expected 2 argument"),
        ("x[5m] > 1", "binary expression must contain only scalar and instant vector"),
    ]:
        with pytest.raises(ValueError, match=why):
            promql_parser.parse(bad)


def test_the_component_lists_every_file_and_generates_the_dashboard_configmap_from_the_raw_json() -> None:
    k = yaml.safe_load((pack.PACK / "kustomization.yaml").read_text(encoding="utf-8"))
    assert k["kind"] == "Component"
    assert sorted(k["resources"]) == ["prometheusrule.yaml", "servicemonitor.yaml"]
    (gen,) = k["configMapGenerator"]
    assert gen["files"] == ["dashboards/taskaction-operator.json"]  # one file: no copy to drift
    assert gen["options"]["labels"]["grafana_dashboard"] == "1"  # what Grafana's sidecar looks for
    assert gen["options"]["disableNameSuffixHash"] is True


def test_service_monitors_select_the_base_services_by_label_and_named_port() -> None:
    services = base_services()
    monitors = docs(pack.SERVICE_MONITORS_FILE)
    assert {m["kind"] for m in monitors} == {"ServiceMonitor"}
    assert {m["apiVersion"] for m in monitors} == {"monitoring.coreos.com/v1"}
    selected = set()
    for m in monitors:
        spec = m["spec"]
        assert set(spec) <= SERVICE_MONITOR_SPEC_FIELDS, set(spec) - SERVICE_MONITOR_SPEC_FIELDS
        assert spec["namespaceSelector"] == {"matchNames": [m["metadata"]["namespace"]]}
        wanted = spec["selector"]["matchLabels"]
        matching = [s for s in services if wanted.items() <= s["metadata"]["labels"].items()]
        assert len(matching) == 1, f"{m['metadata']['name']} selects {len(matching)} Services"
        (service,) = matching
        ports = {p["name"] for p in service["spec"]["ports"]}
        for endpoint in spec["endpoints"]:
            assert set(endpoint) <= ENDPOINT_FIELDS, set(endpoint) - ENDPOINT_FIELDS
            assert endpoint["port"] in ports
            assert endpoint["path"] == "/metrics"
            assert promql_parser.parse_duration(endpoint["scrapeTimeout"]) <= promql_parser.parse_duration(
                endpoint["interval"]
            )
        selected.add(service["metadata"]["name"])
    # Both Services that answer /metrics: the operator's (9090) and serve's (its API port).
    assert selected == {"taskaction-operator-metrics", "taskaction-events"}


def test_rules_have_the_prometheus_operator_shape_severity_and_text() -> None:
    (doc,) = docs(pack.RULES_FILE)
    assert (doc["apiVersion"], doc["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    names = [g["name"] for g in pack.rule_groups()]
    assert len(names) == len(set(names))
    for group in pack.rule_groups():
        assert set(group) <= GROUP_FIELDS, set(group) - GROUP_FIELDS
        for rule in group["rules"]:
            assert set(rule) <= RULE_FIELDS, set(rule) - RULE_FIELDS
            assert ("alert" in rule) != ("record" in rule), rule
            if "for" in rule:
                promql_parser.parse_duration(rule["for"])
            if "record" in rule:
                assert RECORD_NAME.match(rule["record"]), rule["record"]
                assert "annotations" not in rule and "for" not in rule
            else:
                assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
                assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
    alerts = [r["alert"] for r in pack.rules() if "alert" in r]
    assert len(alerts) == len(set(alerts))


def test_recorded_series_used_anywhere_are_recorded_by_the_rules() -> None:
    used = {m for m in pack.all_uses().labels if ":" in m}
    assert used <= pack.recorded_names(), used - pack.recorded_names()


def test_jobs_selected_are_the_services_the_service_monitors_scrape() -> None:
    services = {m["metadata"]["name"] for m in docs(pack.SERVICE_MONITORS_FILE)}
    jobs = {"taskaction-operator-metrics", "taskaction-events"}
    assert services == {"taskaction-operator", "taskaction-events"}  # ServiceMonitor names; the job is
    # the Service's name (the Prometheus Operator's default without jobLabel)
    used = {(op, value) for _m, label, op, value in pack.all_uses().matchers if label == "job"}
    assert used, "nothing selects a job"
    assert {value for _op, value in used} <= jobs
    assert {op for op, _value in used} == {"="}


def test_codes_matched_are_connect_codes() -> None:
    codes = {c.value for c in Code} | {"ok"}
    for _metric, label, op, value in pack.all_uses().matchers:
        if label == "code":
            alternatives = value.split("|") if op in {"=~", "!~"} else [value]
            assert set(alternatives) <= codes, set(alternatives) - codes


def test_dashboard_panels_use_the_datasource_variable_and_fit_the_grid() -> None:
    dash = pack.dashboard()
    assert dash["uid"] == "taskaction-operator"
    assert [v["name"] for v in dash["templating"]["list"]] == ["datasource"]
    ids = [p["id"] for p in pack.panels()]
    assert len(ids) == len(set(ids))
    for panel in pack.panels():
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel.get("description"), panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
