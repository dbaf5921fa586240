"""The TaskAction CRD contract: field-for-field compatible with Flyte v2's ``taskactions.flyte.org`` v1.

The expected tables below are written from upstream's Go types (flyteorg/flyte
``executor/api/v1/taskaction_types.go``: ``TaskActionSpec``, ``TaskActionStatus``, the kubebuilder
markers that make its CRD, ``executor/config/crd/bases/flyte.org_taskactions.yaml``: identity, spec,
status, printer columns) and the standard ``metav1.Condition`` schema, not read back from the CRD.
``examples/flyte-taskaction.yaml`` (what Flyte's actions service writes) is checked against the
CRD's own openAPIV3Schema with a small structural validator that applies the keywords the API
server enforces for this schema and words its errors the way the API server does (checked once
against k8s.io/apiextensions-apiserver v0.37.2's own validation code: same messages for every case
below, and upstream's CRD gives the same results as ours).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "taskactions.flyte.org.yaml"
EXAMPLE_PATH = ROOT / "examples" / "flyte-taskaction.yaml"
GENERATOR_PATH = ROOT / "examples" / "gen_flyte_taskaction.py"

Schema = dict[str, Any]

# --------------------------------------------------------------------------------------------------
# Expected contract (upstream's TaskAction types), written independently of the CRD file.
# Each entry is the full set of validation keywords of that property (descriptions aside).
# --------------------------------------------------------------------------------------------------

STR: Schema = {"type": "string"}
BYTES: Schema = {"type": "string", "format": "byte"}
DATE_TIME: Schema = {"type": "string", "format": "date-time"}
INT32: Schema = {"type": "integer", "format": "int32"}

EXPECTED_SPEC: dict[str, Schema] = {
    "runName": {"type": "string", "minLength": 1, "maxLength": 30},
    "project": {"type": "string", "minLength": 1, "maxLength": 63},
    "domain": {"type": "string", "minLength": 1, "maxLength": 63},
    "actionName": {"type": "string", "minLength": 1, "maxLength": 30},
    "parentActionName": {"type": "string", "minLength": 1, "maxLength": 30},
    "actionType": {"type": "string", "enum": ["task", "condition"]},
    "conditionSpec": BYTES,
    "inputUri": STR,
    "runOutputBase": STR,
    "cacheKey": {"type": "string", "maxLength": 256},
    "taskType": {"type": "string", "maxLength": 63},
    "shortName": {"type": "string", "maxLength": 63},
    "taskTemplate": BYTES,
    "envVars": {"type": "object", "additionalProperties": {"type": "string"}},
    "interruptible": {"type": "boolean"},
    "group": {"type": "string", "maxLength": 256},
}
EXPECTED_SPEC_REQUIRED = {"runName", "project", "domain", "actionName"}

# Scalar status fields; the three structured ones are checked separately below.
EXPECTED_STATUS_SCALARS: dict[str, Schema] = {
    "stateJson": STR,
    "pluginState": BYTES,
    "pluginStateVersion": {"type": "integer"},  # uint8: controller-gen emits no format
    "pluginPhase": STR,
    "pluginPhaseVersion": INT32,
    "attempts": INT32,
    "systemFailures": INT32,
    "cacheStatus": INT32,
    "signalValue": BYTES,
    "signalledBy": STR,
    "signalledAt": DATE_TIME,
}
EXPECTED_STATUS_FIELDS = set(EXPECTED_STATUS_SCALARS) | {"conditions", "phaseHistory", "errorState"}

# The standard metav1.Condition schema (k8s.io/apimachinery), as controller-gen renders it.
EXPECTED_CONDITION_ITEM: dict[str, Schema] = {
    "type": {
        "type": "string",
        "maxLength": 316,
        "pattern": r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    },
    "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
    "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
    "lastTransitionTime": DATE_TIME,
    "reason": {
        "type": "string",
        "minLength": 1,
        "maxLength": 1024,
        "pattern": r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
    },
    "message": {"type": "string", "maxLength": 32768},
}
EXPECTED_CONDITION_REQUIRED = {"type", "status", "lastTransitionTime", "reason", "message"}

EXPECTED_PHASE_TRANSITION: dict[str, Schema] = {"phase": STR, "occurredAt": DATE_TIME, "message": STR}
EXPECTED_PHASE_TRANSITION_REQUIRED = {"phase", "occurredAt"}

EXPECTED_ERROR_STATE: dict[str, Schema] = {"code": STR, "kind": STR, "message": STR}

# (name, type, jsonPath, priority) in order (upstream's printcolumn markers).
EXPECTED_PRINTER_COLUMNS = [
    ("Run", "string", ".spec.runName", 0),
    ("Action", "string", ".spec.actionName", 0),
    ("TaskType", "string", ".spec.taskType", 0),
    ("Status", "string", ".status.conditions[?(@.type=='Progressing')].reason", 0),
    ("Age", "date", ".metadata.creationTimestamp", 0),
    ("Progressing", "string", ".status.conditions[?(@.type=='Progressing')].status", 1),
    ("Succeeded", "string", ".status.conditions[?(@.type=='Succeeded')].status", 1),
    ("Failed", "string", ".status.conditions[?(@.type=='Failed')].status", 1),
]

FLYTE_LABELS = (
    "flyte.org/project",
    "flyte.org/domain",
    "flyte.org/run",
    "flyte.org/action",
    "flyte.org/action-type",
    "flyte.org/is-root",
)


# --------------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(CRD_PATH.read_text()) if d is not None]
    assert len(docs) == 1, "the CRD file holds exactly one document"
    return docs[0]


@pytest.fixture(scope="module")
def version(crd: dict[str, Any]) -> dict[str, Any]:
    versions = crd["spec"]["versions"]
    assert len(versions) == 1
    return versions[0]


@pytest.fixture(scope="module")
def root_schema(version: dict[str, Any]) -> Schema:
    return version["schema"]["openAPIV3Schema"]


@pytest.fixture(scope="module")
def spec_schema(root_schema: Schema) -> Schema:
    return root_schema["properties"]["spec"]


@pytest.fixture(scope="module")
def status_schema(root_schema: Schema) -> Schema:
    return root_schema["properties"]["status"]


@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(EXAMPLE_PATH.read_text()) if d is not None]
    assert len(docs) == 1
    return docs[0]


def keywords(schema: Schema) -> Schema:
    """A schema node without its (free-text) descriptions, recursively."""
    out: Schema = {}
    for key, value in schema.items():
        if key == "description":
            continue
        if key in ("properties",):
            out[key] = {name: keywords(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = keywords(value)
        else:
            out[key] = value
    return out


def _is_base64(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _is_date_time(value: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _json_type(value: Any) -> str:
    """The JSON type name the API server reports for a wrong-typed value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _has_type(value: Any, typ: str) -> bool:
    if typ == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return _json_type(value) == typ


def _invalid(where: str, value: Any, detail: str) -> str:
    return f"{where}: Invalid value: {json.dumps(value)}: {where} in body {detail}"


def validate(value: Any, schema: Schema, path: str = "") -> list[str]:
    """Errors of ``value`` against a structural schema, worded as the API server words them.

    Applies type, required, properties, additionalProperties, items, enum, minLength, maxLength,
    pattern, minimum, the ``byte`` / ``date-time`` formats and list-map key uniqueness; the messages
    follow k8s.io/apiextensions-apiserver's (e.g. ``spec.runName: Required value``,
    ``spec.runName: Too long: may not be more than 30 bytes``). Unknown fields are reported as
    ``<path>: unknown field``: the API server would silently prune them, which breaks compatibility
    just as much.
    """
    where = path or "<root>"
    typ = schema.get("type")
    if typ is not None and not _has_type(value, typ):
        got = _json_type(value)
        return [f'{where}: Invalid value: "{got}": {where} in body must be of type {typ}: "{got}"']

    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(json.dumps(v) for v in schema["enum"])
        errors.append(f"{where}: Unsupported value: {json.dumps(value)}: supported values: {supported}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(_invalid(where, value, f"should be at least {schema['minLength']} chars long"))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{where}: Too long: may not be more than {schema['maxLength']} bytes")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(_invalid(where, value, f"should match '{schema['pattern']}'"))
        fmt = schema.get("format")
        if (fmt == "byte" and not _is_base64(value)) or (fmt == "date-time" and not _is_date_time(value)):
            errors.append(_invalid(where, value, f"must be of type {fmt}: {json.dumps(value)}"))
    if _has_type(value, "integer") and "minimum" in schema and value < schema["minimum"]:
        errors.append(_invalid(where, value, f"should be greater than or equal to {schema['minimum']}"))
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{path + '.' if path else ''}{name}: Required value")
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for name, sub in value.items():
            sub_path = f"{path}.{name}" if path else name
            if props is not None and name in props:
                errors += validate(sub, props[name], sub_path)
            elif isinstance(extra, dict):
                errors += validate(sub, extra, sub_path)
            elif props is not None:
                errors.append(f"{sub_path}: unknown field")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += validate(item, schema["items"], f"{path}[{i}]")
        if schema.get("x-kubernetes-list-type") == "map":
            keys = schema.get("x-kubernetes-list-map-keys", [])
            seen: set[str] = set()
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    key = json.dumps({k: item.get(k) for k in keys}, separators=(",", ":"))
                    if key in seen:
                        errors.append(f"{path}[{i}]: Duplicate value: {key}")
                    seen.add(key)
    return errors


# --------------------------------------------------------------------------------------------------
# identity
# --------------------------------------------------------------------------------------------------


def test_crd_identity(crd: dict[str, Any]) -> None:
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "taskactions.flyte.org"
    # Hand-written: no controller-gen version annotation.
    assert "controller-gen.kubebuilder.io/version" not in (crd["metadata"].get("annotations") or {})
    spec = crd["spec"]
    assert spec["group"] == "flyte.org"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "TaskAction",
        "listKind": "TaskActionList",
        "plural": "taskactions",
        "singular": "taskaction",
    }
    assert "conversion" not in spec


def test_single_served_storage_version_with_status_subresource(version: dict[str, Any]) -> None:
    assert version["name"] == "v1"
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}


def test_schema_root(root_schema: Schema) -> None:
    assert root_schema["type"] == "object"
    assert root_schema["required"] == ["spec"]
    props = root_schema["properties"]
    assert set(props) == {"apiVersion", "kind", "metadata", "spec", "status"}
    assert keywords(props["apiVersion"]) == STR
    assert keywords(props["kind"]) == STR
    assert keywords(props["metadata"]) == {"type": "object"}
    assert props["spec"]["type"] == "object"
    assert props["status"]["type"] == "object"
    assert "required" not in props["status"]


def _walk(schema: Schema, path: str) -> list[tuple[str, Schema]]:
    nodes = [(path, schema)]
    for name, sub in schema.get("properties", {}).items():
        nodes += _walk(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            nodes += _walk(schema[key], f"{path}[{key}]")
    return nodes


def test_schema_is_structural_and_prunes_like_upstream(root_schema: Schema) -> None:
    for path, node in _walk(root_schema, "openAPIV3Schema"):
        assert "type" in node, f"{path} has no type"
        assert "x-kubernetes-preserve-unknown-fields" not in node, path
        assert "x-kubernetes-int-or-string" not in node, path
        assert "default" not in node, path  # upstream defaults nothing


# --------------------------------------------------------------------------------------------------
# spec
# --------------------------------------------------------------------------------------------------


def test_spec_fields_are_exactly_upstreams(spec_schema: Schema) -> None:
    assert set(spec_schema["properties"]) == set(EXPECTED_SPEC)
    assert "org" not in spec_schema["properties"]


@pytest.mark.parametrize(("field", "expected"), sorted(EXPECTED_SPEC.items()))
def test_spec_field_validation(spec_schema: Schema, field: str, expected: Schema) -> None:
    assert keywords(spec_schema["properties"][field]) == expected


def test_spec_required(spec_schema: Schema) -> None:
    assert set(spec_schema["required"]) == EXPECTED_SPEC_REQUIRED
    assert len(spec_schema["required"]) == len(EXPECTED_SPEC_REQUIRED)


IDENTITY_FIELDS = ("project", "domain", "runName", "actionName", "parentActionName")


def test_spec_identity_is_immutable_by_transition_rules(spec_schema: Schema) -> None:
    """Our one addition to upstream's schema: a CEL transition rule per identity field (checked by the
    real API server in tests/e2e/test_cluster_smoke.py)."""
    rules = spec_schema["x-kubernetes-validations"]
    assert [r["message"] for r in rules] == [f"spec.{f} is immutable" for f in IDENTITY_FIELDS]
    for field, rule in zip(IDENTITY_FIELDS, rules, strict=True):
        assert f"self.{field} == oldSelf.{field}" in rule["rule"], rule
    assert "has(self.parentActionName) == has(oldSelf.parentActionName)" in rules[-1]["rule"]
    for path, node in _walk(spec_schema, "spec"):
        assert path == "spec" or "x-kubernetes-validations" not in node, path


# --------------------------------------------------------------------------------------------------
# status
# --------------------------------------------------------------------------------------------------


def test_status_fields_are_exactly_upstreams(status_schema: Schema) -> None:
    assert set(status_schema["properties"]) == EXPECTED_STATUS_FIELDS


@pytest.mark.parametrize(("field", "expected"), sorted(EXPECTED_STATUS_SCALARS.items()))
def test_status_scalar_field(status_schema: Schema, field: str, expected: Schema) -> None:
    assert keywords(status_schema["properties"][field]) == expected


def test_status_conditions_is_a_metav1_condition_list_map(status_schema: Schema) -> None:
    conditions = status_schema["properties"]["conditions"]
    assert conditions["type"] == "array"
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert item["type"] == "object"
    assert set(item["required"]) == EXPECTED_CONDITION_REQUIRED
    assert len(item["required"]) == len(EXPECTED_CONDITION_REQUIRED)
    assert {name: keywords(sub) for name, sub in item["properties"].items()} == EXPECTED_CONDITION_ITEM
    assert set(conditions) - {"description"} == {
        "type",
        "items",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
    }


def test_status_phase_history(status_schema: Schema) -> None:
    history = status_schema["properties"]["phaseHistory"]
    assert history["type"] == "array"
    assert "x-kubernetes-list-type" not in history  # atomic list, as upstream
    item = history["items"]
    assert item["type"] == "object"
    assert set(item["required"]) == EXPECTED_PHASE_TRANSITION_REQUIRED
    assert {name: keywords(sub) for name, sub in item["properties"].items()} == EXPECTED_PHASE_TRANSITION


def test_status_error_state(status_schema: Schema) -> None:
    error_state = keywords(status_schema["properties"]["errorState"])
    # kind is a free string upstream ("USER", "SYSTEM" or ""), not an enum.
    assert error_state == {"type": "object", "properties": EXPECTED_ERROR_STATE}


# --------------------------------------------------------------------------------------------------
# printer columns
# --------------------------------------------------------------------------------------------------


def test_printer_columns(version: dict[str, Any]) -> None:
    columns = version["additionalPrinterColumns"]
    got = [(c["name"], c["type"], c["jsonPath"], c.get("priority", 0)) for c in columns]
    assert got == EXPECTED_PRINTER_COLUMNS
    for column in columns:
        assert set(column) <= {"name", "type", "jsonPath", "priority", "description", "format"}


# --------------------------------------------------------------------------------------------------
# The example TaskAction (what Flyte's actions service Enqueue writes)
# --------------------------------------------------------------------------------------------------


def test_example_validates_against_the_crd(example: dict[str, Any], root_schema: Schema) -> None:
    assert validate(example, root_schema) == []


def test_example_looks_like_flytes_enqueue(example: dict[str, Any]) -> None:
    from flyteidl2.core import tasks_pb2

    assert example["apiVersion"] == "flyte.org/v1"
    assert example["kind"] == "TaskAction"
    meta, spec = example["metadata"], example["spec"]
    assert "namespace" not in meta
    assert meta["name"] == f"{spec['runName']}-a0"
    assert spec["actionName"] == "a0"
    assert "parentActionName" not in spec
    assert "actionType" not in spec  # only conditions carry it
    assert meta["labels"] == {
        "flyte.org/project": spec["project"],
        "flyte.org/domain": spec["domain"],
        "flyte.org/run": spec["runName"],
        "flyte.org/action": spec["actionName"],
        "flyte.org/action-type": "task",
        "flyte.org/is-root": "true",
    }
    assert set(meta["labels"]) == set(FLYTE_LABELS)
    for field in (
        "runName",
        "project",
        "domain",
        "actionName",
        "inputUri",
        "runOutputBase",
        "taskType",
        "shortName",
        "cacheKey",
        "taskTemplate",
        "envVars",
        "interruptible",
        "group",
    ):
        assert field in spec, field
    template = tasks_pb2.TaskTemplate()
    template.ParseFromString(base64.b64decode(spec["taskTemplate"], validate=True))
    assert template.type == spec["taskType"]
    assert template.id.name.endswith(spec["shortName"])
    assert template.container.args[0] == "a0"
    assert "{{.runStartTime}}" not in template.container.args  # substituted at Enqueue
    assert len(base64.b64decode(spec["cacheKey"], validate=True)) == 32  # base64 SHA-256
    assert spec["runOutputBase"].endswith(f"/{spec['project']}/{spec['domain']}/{spec['runName']}/")


def test_example_is_the_generators_output() -> None:
    out = subprocess.run(
        [sys.executable, str(GENERATOR_PATH)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out == EXAMPLE_PATH.read_text()


# --------------------------------------------------------------------------------------------------
# Rejections: the schema (through the checker) refuses what the API server refuses
# --------------------------------------------------------------------------------------------------


def _without(spec: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k != field}


@pytest.mark.parametrize("field", sorted(EXPECTED_SPEC_REQUIRED))
def test_missing_required_spec_field_is_rejected(
    example: dict[str, Any], root_schema: Schema, field: str
) -> None:
    broken = {**example, "spec": _without(example["spec"], field)}
    assert validate(broken, root_schema) == [f"spec.{field}: Required value"]


def test_missing_spec_is_rejected(example: dict[str, Any], root_schema: Schema) -> None:
    assert validate(_without(example, "spec"), root_schema) == ["spec: Required value"]


_LIMITED = [(f, s["maxLength"]) for f, s in sorted(EXPECTED_SPEC.items()) if "maxLength" in s]


@pytest.mark.parametrize(("field", "limit"), _LIMITED)
def test_spec_length_limits(example: dict[str, Any], root_schema: Schema, field: str, limit: int) -> None:
    at_limit = {**example, "spec": {**example["spec"], field: "a" * limit}}
    assert validate(at_limit, root_schema) == []
    over = {**example, "spec": {**example["spec"], field: "a" * (limit + 1)}}
    assert validate(over, root_schema) == [f"spec.{field}: Too long: may not be more than {limit} bytes"]


@pytest.mark.parametrize("field", ["runName", "project", "domain", "actionName", "parentActionName"])
def test_spec_empty_names_are_rejected(example: dict[str, Any], root_schema: Schema, field: str) -> None:
    broken = {**example, "spec": {**example["spec"], field: ""}}
    assert validate(broken, root_schema) == [
        f'spec.{field}: Invalid value: "": spec.{field} in body should be at least 1 chars long'
    ]


# The messages are the API server's own (k8s.io/apiextensions-apiserver), verbatim.
@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        (
            "actionType",
            "trace",
            'spec.actionType: Unsupported value: "trace": supported values: "task", "condition"',
        ),
        (
            "taskTemplate",
            "not base64!",
            'spec.taskTemplate: Invalid value: "not base64!": '
            'spec.taskTemplate in body must be of type byte: "not base64!"',
        ),
        (
            "conditionSpec",
            "%%%",
            'spec.conditionSpec: Invalid value: "%%%": spec.conditionSpec in body must be of type byte: '
            '"%%%"',
        ),
        (
            "interruptible",
            "yes",
            'spec.interruptible: Invalid value: "string": '
            'spec.interruptible in body must be of type boolean: "string"',
        ),
        (
            "envVars",
            {"A": 1},
            'spec.envVars.A: Invalid value: "number": spec.envVars.A in body must be of type string: '
            '"number"',
        ),
        (
            "runName",
            7,
            'spec.runName: Invalid value: "number": spec.runName in body must be of type string: "number"',
        ),
    ],
)
def test_spec_bad_values_are_rejected(
    example: dict[str, Any], root_schema: Schema, field: str, value: Any, error: str
) -> None:
    broken = {**example, "spec": {**example["spec"], field: value}}
    assert validate(broken, root_schema) == [error]


def test_unknown_spec_field_is_reported(example: dict[str, Any], root_schema: Schema) -> None:
    # Upstream's stale sample still carries `org`; the API server would prune it.
    broken = {**example, "spec": {**example["spec"], "org": "demo"}}
    assert validate(broken, root_schema) == ["spec.org: unknown field"]


def test_condition_action_spec_is_accepted(example: dict[str, Any], root_schema: Schema) -> None:
    spec = {
        key: example["spec"][key] for key in ("runName", "project", "domain", "inputUri", "runOutputBase")
    }
    spec |= {
        "actionName": "approve",
        "parentActionName": "a0",
        "actionType": "condition",
        "conditionSpec": base64.b64encode(b"\x0a\x07approve").decode(),
    }
    assert validate({**example, "spec": spec}, root_schema) == []


# --------------------------------------------------------------------------------------------------
# A status as the executor and the actions service write it
# --------------------------------------------------------------------------------------------------

_STATUS: dict[str, Any] = {
    "stateJson": '{"phase":"Success","actionId":"rdemo1/a0","timestamp":"2026-08-21T16:51:10Z"}',
    "pluginState": base64.b64encode(b"gob").decode(),
    "pluginStateVersion": 1,
    "pluginPhase": "Success",
    "pluginPhaseVersion": 0,
    "attempts": 1,
    "systemFailures": 0,
    "cacheStatus": 2,
    "conditions": [
        {
            "type": "Progressing",
            "status": "False",
            "reason": "Completed",
            "message": "",
            "lastTransitionTime": "2026-08-21T16:51:10Z",
            "observedGeneration": 1,
        },
        {
            "type": "Succeeded",
            "status": "True",
            "reason": "Completed",
            "message": "task completed",
            "lastTransitionTime": "2026-08-21T16:51:10Z",
        },
    ],
    "phaseHistory": [
        {"phase": "Queued", "occurredAt": "2026-08-21T16:50:01Z"},
        {"phase": "Executing", "occurredAt": "2026-08-21T16:50:30Z", "message": "pod running"},
        {"phase": "Completed", "occurredAt": "2026-08-21T16:51:10Z"},
    ],
    "errorState": {"code": "OOMKilled", "kind": "USER", "message": "previous attempt"},
    "signalValue": base64.b64encode(b"\x0a\x02\x08\x01").decode(),
    "signalledBy": "user@example.com",
    "signalledAt": "2026-08-21T16:51:00Z",
}


def test_full_status_validates(status_schema: Schema) -> None:
    assert validate(_STATUS, status_schema, "status") == []


_C0 = "status.conditions[0]"


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("reason", None, f"{_C0}.reason: Required value"),
        ("lastTransitionTime", None, f"{_C0}.lastTransitionTime: Required value"),
        ("message", None, f"{_C0}.message: Required value"),
        ("status", None, f"{_C0}.status: Required value"),
        ("type", None, f"{_C0}.type: Required value"),
        (
            "reason",
            "Not Camel",
            f'{_C0}.reason: Invalid value: "Not Camel": {_C0}.reason in body should match '
            "'^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$'",
        ),
        (
            "status",
            "Yes",
            f'{_C0}.status: Unsupported value: "Yes": supported values: "True", "False", "Unknown"',
        ),
        ("message", "m" * 32769, f"{_C0}.message: Too long: may not be more than 32768 bytes"),
        ("reason", "R" * 1025, f"{_C0}.reason: Too long: may not be more than 1024 bytes"),
        ("type", "T" * 317, f"{_C0}.type: Too long: may not be more than 316 bytes"),
        (
            "observedGeneration",
            -1,
            f"{_C0}.observedGeneration: Invalid value: -1: {_C0}.observedGeneration in body "
            "should be greater than or equal to 0",
        ),
        (
            "lastTransitionTime",
            "yesterday",
            f'{_C0}.lastTransitionTime: Invalid value: "yesterday": {_C0}.lastTransitionTime in body '
            'must be of type date-time: "yesterday"',
        ),
    ],
)
def test_bad_conditions_are_rejected(status_schema: Schema, field: str, value: Any, error: str) -> None:
    condition = dict(_STATUS["conditions"][0])
    if value is None:
        del condition[field]
    else:
        condition[field] = value
    assert validate({"conditions": [condition]}, status_schema, "status") == [error]


def test_duplicate_condition_types_are_rejected(status_schema: Schema) -> None:
    first = _STATUS["conditions"][0]
    errors = validate({"conditions": [first, _STATUS["conditions"][1], dict(first)]}, status_schema, "status")
    assert errors == ['status.conditions[2]: Duplicate value: {"type":"Progressing"}']


def test_phase_history_entry_needs_phase_and_time(status_schema: Schema) -> None:
    errors = validate({"phaseHistory": [{"message": "x"}]}, status_schema, "status")
    assert sorted(errors) == [
        "status.phaseHistory[0].occurredAt: Required value",
        "status.phaseHistory[0].phase: Required value",
    ]
