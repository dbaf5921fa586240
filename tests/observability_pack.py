"""The observability pack (manifests/components/observability) read as data: every PromQL expression
of the PrometheusRule and the Grafana dashboard, parsed with a real PromQL parser (``promql-parser``,
the Python binding of the Rust ``promql-parser`` crate), and the metric and label names each uses.

Used by the unit test (structure, parsing) and by the e2e test that scrapes a running operator and
a running ``serve`` and checks that every name used here is one they export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import promql_parser
import yaml

from tests.conftest import ROOT

PACK = ROOT / "manifests" / "components" / "observability"
RULES_FILE = PACK / "prometheusrule.yaml"
SERVICE_MONITORS_FILE = PACK / "servicemonitor.yaml"
DASHBOARD_FILE = PACK / "dashboards" / "taskaction-operator.json"

#: Grafana replaces these before the query reaches Prometheus; the parser sees what Prometheus sees.
GRAFANA_INTERVALS = {"$__rate_interval": "2m", "$__interval": "30s", "$__range": "6h"}

#: Labels Prometheus attaches to every series of a target discovered through a ServiceMonitor
#: (the Prometheus Operator's relabeling), not the exporter: they are never in a /metrics response.
TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod", "service", "endpoint", "container"})
#: Series Prometheus itself writes for each target.
SCRAPE_SERIES = frozenset({"up"})
MATCH_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}


@dataclass(frozen=True)
class Query:
    where: str  # "alert TaskActionOperatorDown", "dashboard panel 'Recording lag' A"
    expr: str  # as Prometheus receives it

    def parse(self) -> promql_parser.Expr:
        try:
            return promql_parser.parse(self.expr)
        except ValueError as exc:
            raise AssertionError(f"{self.where}: not PromQL ({exc}): {self.expr}") from None


@dataclass
class Uses:
    """What one or more expressions read: metric names, and the label names used on each."""

    labels: dict[str, set[str]] = field(default_factory=dict)  # metric -> labels matched or grouped by
    matchers: list[tuple[str, str, str, str]] = field(default_factory=list)  # metric, label, op, value

    def add(self, metric: str, labels: set[str]) -> None:
        self.labels.setdefault(metric, set()).update(labels)


def rule_groups() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    return list(doc["spec"]["groups"])


def rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"]]


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD_FILE.read_text(encoding="utf-8")))


def panels() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for panel in dashboard()["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # a collapsed row carries its panels
    return out


def grafana_to_prometheus(expr: str) -> str:
    for variable, value in GRAFANA_INTERVALS.items():
        expr = expr.replace(variable, value)
    return expr


def queries() -> list[Query]:
    """Every expression of the pack, rules first."""
    out = [
        Query(f"{'alert' if 'alert' in r else 'record'} {r.get('alert') or r.get('record')}", str(r["expr"]))
        for r in rules()
    ]
    for panel in panels():
        for target in panel.get("targets", []):
            out.append(
                Query(
                    f"dashboard panel {panel['title']!r} {target['refId']}",
                    grafana_to_prometheus(str(target["expr"])),
                )
            )
    return out


def uses(expr: promql_parser.Expr) -> Uses:
    """The metric and label names ``expr`` reads. A label grouped by (``by``, ``without``, ``on``,
    ``ignoring``, ``group_left``) is taken as used on every metric under that node."""
    found = Uses()

    def selectors(node: promql_parser.Expr) -> list[str]:
        names: list[str] = []

        def visit(n: Any) -> None:
            if isinstance(n, promql_parser.VectorSelector) and n.name:
                names.append(str(n.name))

        promql_parser.walk(node, visit)
        return names

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            name = str(node.name or "")
            labels = set()
            for m in node.matchers.matchers:
                if m.name == "__name__":
                    name = str(m.value)
                    continue
                labels.add(str(m.name))
                found.matchers.append((name, str(m.name), MATCH_OPS[str(m.op)], str(m.value)))
            found.add(name, labels)
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            for metric in selectors(node.expr):
                found.add(metric, {str(x) for x in node.modifier.labels})
        elif isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
            grouped = set(node.modifier.group_labels or [])
            if node.modifier.matching is not None:
                grouped |= set(node.modifier.matching.labels)
            for metric in selectors(node.lhs) + selectors(node.rhs):
                found.add(metric, {str(x) for x in grouped})

    promql_parser.walk(expr, visit)
    return found


def all_uses() -> Uses:
    total = Uses()
    for query in queries():
        one = uses(query.parse())
        for metric, labels in one.labels.items():
            total.add(metric, labels)
        total.matchers.extend(one.matchers)
    return total
