"""The JSON output contract: every bundled capture's output validates against the schema.

The schema ships inside the package (tcptrace/schema/output.schema.json) and is loaded
the way an installed user would load it, through importlib.resources.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from conftest import analyze
from jsonschema import Draft202012Validator

from tcptrace import _native
from tcptrace.cli import main

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"
CAPTURES = sorted(
    p for d in ("linux", "crafted") for p in (PCAPS / d).iterdir()
    if p.name.endswith((".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz"))
)
IDS = [f"{p.parent.name}/{p.name}" for p in CAPTURES]

CONTRACT_KEYS = [
    "id", "client.ip", "client.port", "server.ip", "server.port", "first_ts", "last_ts",
    "handshake.complete", "handshake.syn_to_synack_ms", "handshake.synack_to_ack_ms",
    "handshake.rtt_ms", "handshake.setup_ms", "handshake.syn_retransmits",
    "handshake.synack_retransmits", "close.initiator", "close.time_wait", "half_close", "rst",
    "keepalive.probes.client", "keepalive.probes.server", "keepalive.acks.client",
    "keepalive.acks.server", "reuse.protocol", "reuse.requests", "states.client",
    "states.server", "final_state.client", "final_state.server", "packets.client",
    "packets.server", "bytes.client", "bytes.server",
]


@cache
def schema() -> dict[str, Any]:
    resource = files("tcptrace") / "schema" / "output.schema.json"
    loaded: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    return loaded


def validator(definition: str | None = None) -> Draft202012Validator:
    """The document validator, or one for `#/$defs/<definition>` (a jsonl line)."""
    s = schema()
    if definition is not None:
        s = {"$schema": s["$schema"], "$defs": s["$defs"], "$ref": f"#/$defs/{definition}"}
    return Draft202012Validator(s)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    try:
        main(["analyze", "-q", *args])
    except SystemExit as exc:  # main() exits only on errors
        pytest.fail(f"tcptrace exited with {exc.code}: {capsys.readouterr().err}")
    return capsys.readouterr().out


def errors(v: Draft202012Validator, instance: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in v.iter_errors(instance)]


def test_captures_found() -> None:
    assert any(p.parent.name == "linux" for p in CAPTURES)
    assert any(p.parent.name == "crafted" for p in CAPTURES)


def test_schema_is_valid_draft_2020_12() -> None:
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema())
    for name in ("connection", "summary", "source"):
        assert name in schema()["$defs"]


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_json_document_validates(capture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = json.loads(run(capsys, str(capture), "--format", "json"))
    assert errors(validator(), document) == []
    assert [c["id"] for c in document["connections"]] == list(
        range(1, len(document["connections"]) + 1))


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_jsonl_lines_validate(capture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = run(capsys, str(capture), "--format", "jsonl").splitlines()
    v = validator("connection")
    for line in lines:
        assert errors(v, json.loads(line)) == []


def test_all_captures_merged_validate(capsys: pytest.CaptureFixture[str]) -> None:
    document = json.loads(run(capsys, *map(str, CAPTURES), "--format", "json"))
    assert errors(validator(), document) == []
    assert document["source"]["connections"] == len(document["connections"])


def test_all_captures_per_file_validate(capsys: pytest.CaptureFixture[str]) -> None:
    document = json.loads(run(capsys, *map(str, CAPTURES), "--format", "json", "--per-file"))
    assert errors(validator(), document) == []
    assert {c["file"] for c in document["connections"]} <= set(map(str, CAPTURES))
    assert [c["id"] for c in document["connections"]] == list(
        range(1, len(document["connections"]) + 1))


def _required_paths(node: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted paths of every required key, descending into object-valued properties."""
    paths: set[str] = set()
    for key in node.get("required", []):
        path = f"{prefix}{key}"
        paths.add(path)
        prop = node["properties"][key]
        if "$ref" in prop:  # "#/$defs/<name>"
            prop = schema()["$defs"][prop["$ref"].rsplit("/", 1)[1]]
        if prop.get("type") == "object":
            paths |= _required_paths(prop, f"{path}.")
    return paths


def test_connection_requires_contract_keys() -> None:
    connection = schema()["$defs"]["connection"]
    required = _required_paths(connection)
    missing = [k for k in CONTRACT_KEYS if k not in required]
    assert missing == []


def _objects(node: Any, where: str = "#") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            found.append((where, node))
        for key, value in node.items():
            found += _objects(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _objects(value, f"{where}/{i}")
    return found


# present only with --zeek, --per-file
OPTIONAL_KEYS = {"#/$defs/connection": {"zeek", "file"},
                 # a layer names the identifier its protocol has; UDP carriers give ports
                 "#/$defs/tunnel": {"key", "session", "vni"},
                 "#/$defs/tunnel/properties/outer": {"sport", "dport"},
                 "#/$defs/source": {"failed_connections"}}  # present only when not 0


def test_records_are_strict_and_documented() -> None:
    for where, obj in _objects(schema()):
        assert obj.get("additionalProperties") is False, where
        optional = OPTIONAL_KEYS.get(where, set())
        assert sorted(obj["required"]) == sorted(set(obj["properties"]) - optional), where
        for key, prop in obj["properties"].items():
            assert prop.get("description"), f"{where}/{key}"


def test_enums_match_the_model() -> None:
    d = schema()["$defs"]
    conn = d["connection"]["properties"]
    names = _native.VOCABULARY
    states = names["states"]
    assert len(states) == 10
    assert conn["final_state"]["properties"]["client"]["enum"] == states
    assert d["state_change"]["properties"]["state"]["enum"] == states
    assert conn["outcome"]["enum"] == names["outcomes"]
    assert conn["role_rule"]["enum"] == names["role_rules"]
    rst = conn["rst"]["anyOf"][0]["properties"]
    assert rst["kind"]["enum"] == names["rst_kinds"]
    assert rst["state"]["enum"] == rst["receiver_state"]["enum"] == states
    probe = conn["probe"]["anyOf"][0]["properties"]
    assert probe["kind"]["enum"] == names["probe_kinds"]
    assert probe["answer"]["enum"] == names["probe_answers"]
    scans = d["summary"]["properties"]["scans"]["properties"]
    assert scans["probes"]["propertyNames"]["enum"] == names["probe_kinds"]
    assert d["summary"]["properties"]["outcomes"]["propertyNames"]["enum"] == names["outcomes"]
    assert conn["reuse"]["properties"]["protocol"]["enum"] == ["http/1.0", "http/1.1", None]
    assert conn["close"]["properties"]["initiator"]["enum"] == ["client", "server", "both", None]


def test_schema_rejects_drift() -> None:
    """The schema is strict: an extra key, a missing key or a wrong type is an error."""
    capture = PCAPS / "linux" / "client_close.pcap"
    (record,), _ = analyze(capture)
    v = validator("connection")
    assert errors(v, record) == []
    assert errors(v, {**record, "extra": 1})
    assert errors(v, {k: x for k, x in record.items() if k != "rst"})
    assert errors(v, {**record, "id": 1.5})
    assert errors(v, {**record, "outcome": "closed"})
    assert errors(v, {**record, "handshake": {**record["handshake"], "syn_retransmits": None}})
    assert errors(v, {**record, "final_state": {"client": "LISTEN", "server": "CLOSED"}})


def test_every_documented_skip_reason_is_in_the_schema() -> None:
    """docs/output.md's `source.skipped` table and the schema's reasons are the same set (the
    tunnel and 802.11 reasons were once documented and emitted but missing here)."""
    docs = (Path(__file__).resolve().parent.parent / "docs" / "output.md").read_text()
    table = docs.split("## `source.skipped` reasons")[1].split("\n## ")[0]
    documented = {line.split("`")[1] for line in table.splitlines() if line.startswith("| `")}
    skipped = schema()["$defs"]["source"]["properties"]["skipped"]
    assert set(skipped["propertyNames"]["enum"]) == documented
