"""Property tests of the runner PATCH: never a 5xx, 2xx only for valid bodies, a refusal changes
nothing.

Bodies are drawn from two families. Valid bodies combine any subset of the fields with values
the contract accepts, and must be applied (200). Invalid bodies take a valid one and spoil one
field with a value the contract refuses, and must be refused (400) with the run untouched. A
third family throws arbitrary JSON at the endpoint, where the only promises are "no 5xx" and
"a refusal changes nothing".
"""

import json
import string
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from common.actors import Actor
from gateways.services import gateway_token_issue
from runs.models import RunStatus
from runs.services import run_update
from tests.factories import GatewayFactory, PipelineFactory, RunFactory
from tests.runs.conftest import snapshot

pytestmark = pytest.mark.django_db

BIGINT = 2**63 - 1
FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Text the database can hold: no NUL, no lone surrogates (both are refused, see below).
text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=300)
short_text = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=200
)
counter = st.integers(min_value=0, max_value=BIGINT)
percent = st.one_of(
    st.integers(min_value=0, max_value=100),
    st.floats(min_value=0, max_value=100, allow_nan=False, allow_infinity=False),
)
timestamp = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2020, 12, 31), timezones=st.just(UTC)
).map(lambda value: value.isoformat())
extra_key = st.text(string.ascii_letters, min_size=1, max_size=64).filter(
    lambda key: (
        key
        not in {"rowsLoaded", "bytesLoaded", "progress", "currentPhase", "currentResource", "at"}
    )
)
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-BIGINT, max_value=BIGINT),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=100),
)
number = st.one_of(
    st.integers(min_value=-BIGINT, max_value=BIGINT),
    st.floats(allow_nan=False, allow_infinity=False),
)
log_entry = st.fixed_dictionaries(
    {"level": st.sampled_from(["info", "warn", "error"]), "message": text},
    optional={"nodeId": st.one_of(st.none(), short_text)},
)
summary = st.fixed_dictionaries(
    {},
    optional={
        "rowsLoaded": st.one_of(st.none(), counter),
        "bytesLoaded": st.one_of(st.none(), counter),
        "progress": st.one_of(st.none(), percent),
        "currentPhase": st.one_of(st.none(), short_text),
        "currentResource": st.one_of(st.none(), short_text),
    },
).flatmap(
    lambda known: st.dictionaries(extra_key, scalar, max_size=5).map(
        lambda extra: {**extra, **known}
    )
)
sample = st.fixed_dictionaries(
    {}, optional={"rowsLoaded": counter, "bytesLoaded": counter, "progress": percent}
).flatmap(
    lambda known: st.dictionaries(extra_key, number, max_size=5).map(
        lambda extra: {**extra, **known}
    )
)
node = st.fixed_dictionaries(
    {
        "nodeId": st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=40),
        "status": st.sampled_from(["pending", "running", "succeeded", "failed", "cancelled"]),
    },
    optional={
        "type": st.text(string.ascii_letters, max_size=40),
        "retries": st.integers(min_value=0, max_value=2**31 - 1),
        "metrics": st.dictionaries(extra_key, scalar, max_size=5),
    },
)
# A running run may move to any of these (cancelled is the accepted spelling of canceled).
status = st.sampled_from(["succeeded", "failed", "canceled", "cancelled", "cancel_requested"])

VALID_FIELDS = {
    "status": status,
    "appendLog": log_entry,
    "logEntries": st.lists(log_entry, max_size=5),
    "telemetrySummary": summary,
    "appendTelemetrySample": sample,
    "telemetrySamples": st.lists(sample, max_size=5),
    "errorSummary": st.one_of(st.none(), text),
    "nodes": st.lists(node, max_size=4, unique_by=lambda item: item["nodeId"]),
}


@st.composite
def valid_body(draw) -> dict:
    names = draw(st.sets(st.sampled_from(sorted(VALID_FIELDS)), min_size=1))
    body = {name: draw(VALID_FIELDS[name]) for name in names}
    if draw(st.booleans()):
        # Times travel together: a finish before the start is a refusal, tested elsewhere.
        started = draw(timestamp)
        body["startedAt"] = started
        if draw(st.booleans()):
            body["finishedAt"] = started
    return body


not_a_string = st.one_of(st.integers(), st.booleans(), st.lists(st.integers(), max_size=2))
BAD_VALUES = {
    "status": st.one_of(
        st.text(max_size=20).filter(lambda s: s not in [*RunStatus.values, "cancelled"]),
        not_a_string,
        st.none(),
    ),
    "appendLog": st.one_of(
        st.just({"level": "debug", "message": "x"}),
        st.just({"message": "x"}),
        not_a_string.map(lambda value: {"level": "info", "message": value}),
        st.just({"level": "info", "message": "x", "colour": "red"}),
        st.just({"level": "info", "message": "x", "nodeId": "n" * 201}),
        st.just({"level": "info", "message": "nul \x00"}),
        st.lists(log_entry, min_size=1, max_size=2),
        text,
    ),
    "telemetrySummary": st.one_of(
        st.integers(max_value=-1).map(lambda value: {"rowsLoaded": value}),
        st.integers(min_value=BIGINT + 1).map(lambda value: {"bytesLoaded": value}),
        st.floats(min_value=100.001, allow_infinity=False).map(lambda v: {"progress": v}),
        st.text(max_size=5).map(lambda value: {"rowsLoaded": value}),
        st.just({"rowsLoaded": True}),
        st.just({"rowsLoaded": 1.5}),
        st.just({"nested": {"a": 1}}),
        st.just({f"k{i}": i for i in range(65)}),
        st.lists(st.integers(), max_size=3),
    ),
    "appendTelemetrySample": st.one_of(
        st.just({"phase": "load"}),
        st.just({"at": "2025-03-27T02:00:00"}),
        st.just({"progress": 200}),
        st.text(max_size=5).map(lambda value: {"rowsLoaded": value}),
        st.lists(sample, min_size=1, max_size=2),
    ),
    "errorSummary": st.one_of(not_a_string, st.just({"message": "x"})),
    "startedAt": st.one_of(
        st.just("2025-03-27T02:00:00"),
        st.just("2025-02-30T00:00:00Z"),
        st.just("0001-01-01T00:00:00Z"),
        st.text(max_size=12),
        st.integers(),
    ),
    "nodes": st.one_of(
        st.just([{"status": "running"}]),
        st.just([{"nodeId": "a", "status": "exploded"}]),
        st.just([{"nodeId": "a", "status": "running"}, {"nodeId": "a", "status": "failed"}]),
        st.just({"nodeId": "a", "status": "running"}),
    ),
    "unknownField": st.one_of(scalar, st.lists(st.integers(), max_size=2)),
}


@st.composite
def invalid_body(draw) -> dict:
    body = draw(valid_body())
    body.pop("finishedAt", None)  # keep the one spoilt field the only reason for refusal
    name = draw(st.sampled_from(sorted(BAD_VALUES)))
    body[name] = draw(BAD_VALUES[name])
    return body


json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), text),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@pytest.fixture
def fleet(db):
    gateway = GatewayFactory(name="fuzz-gw")
    _, token = gateway_token_issue(actor=Actor.system(), gateway=gateway)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return {"pipeline": PipelineFactory(name="fuzz", default_gateway=gateway), "client": client}


def running_run(fleet):
    run = RunFactory(pipeline=fleet["pipeline"])
    return run_update(actor=Actor.system(), run=run, changes={"status": RunStatus.RUNNING})


def send(client, run, raw: str):
    return client.generic(
        "PATCH", f"/api/agent/runs/{run.public_id}", raw, content_type="application/json"
    )


@FUZZ
@given(body=valid_body())
def test_a_valid_body_is_applied(fleet, body):
    run = running_run(fleet)
    response = send(fleet["client"], run, json.dumps(body))
    assert response.status_code == 200, (body, response.content[:500])
    if "status" in body:
        expected = "canceled" if body["status"] == "cancelled" else body["status"]
        assert response.json()["status"] == expected


@FUZZ
@given(body=invalid_body())
def test_an_invalid_body_is_refused_and_changes_nothing(fleet, body):
    run = running_run(fleet)
    before = snapshot(run)
    response = send(fleet["client"], run, json.dumps(body))
    assert response.status_code == 400, (body, response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["errors"]
    assert snapshot(run) == before


@FUZZ
@given(body=json_value)
def test_any_json_gets_a_clean_answer(fleet, body):
    run = running_run(fleet)
    before = snapshot(run)
    response = send(fleet["client"], run, json.dumps(body))
    assert response.status_code < 500, (body, response.content[:500])
    assert response["Content-Type"].startswith("application/json")
    if response.status_code >= 400:
        assert snapshot(run) == before


@FUZZ
@given(raw=st.one_of(st.binary(max_size=200), text.map(lambda value: value[:200])))
def test_any_bytes_get_a_clean_answer(fleet, raw):
    run = running_run(fleet)
    before = snapshot(run)
    response = send(fleet["client"], run, raw)
    assert response.status_code < 500, (raw, response.content[:500])
    if response.status_code >= 400:
        assert snapshot(run) == before
