"""The runner API end to end through HTTP: every PATCH field, both auth paths, the lifecycle."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from rest_framework.test import APIClient

from common.actors import Actor
from gateways.services import credential_revoke, gateway_token_issue
from runs.models import LogLine, Run, TelemetrySample
from tests.factories import GatewayFactory, RunFactory, UserFactory
from tests.runs.conftest import snapshot

pytestmark = pytest.mark.django_db


def agent_url(run) -> str:
    return f"/api/agent/runs/{run.public_id}"


def elt_url(run) -> str:
    return f"/api/elt/runs/{run.public_id}"


def patch(client, run, body, **extra):
    return client.patch(agent_url(run), body, format="json", **extra)


class TestCreate:
    def test_creates_a_queued_run_targeted_at_the_named_gateway(self, key_client, pipeline):
        other = GatewayFactory(name="edge-2")
        response = key_client.post(
            "/api/elt/runs",
            {"pipelineId": pipeline.public_id, "gateway": "edge-2", "trigger": "schedule"},
            format="json",
        )
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["id"].startswith("run_")
        assert body["status"] == "queued"
        assert body["pipelineId"] == pipeline.public_id
        assert body["gateway"] == {"id": other.public_id, "name": "edge-2"}
        assert body["trigger"] == {"type": "schedule"}
        assert body["logEntries"] == []
        assert body["telemetry"] == {"summary": {}, "samples": []}
        assert body["nodes"] == []
        assert body["startedAt"] is None and body["durationSeconds"] is None

    def test_defaults_to_the_pipelines_gateway_and_accepts_a_gateway_id(self, key_client, pipeline):
        response = key_client.post(
            "/api/elt/runs", {"pipelineId": pipeline.public_id}, format="json"
        )
        assert response.json()["gateway"]["id"] == pipeline.default_gateway.public_id
        assert response.json()["trigger"] == {"type": "api"}
        by_id = key_client.post(
            "/api/elt/runs",
            {
                "pipelineId": pipeline.public_id,
                "gateway": pipeline.default_gateway.public_id,
                "trigger": {"type": "schedule", "scheduleId": "sch_01"},
            },
            format="json",
        )
        assert by_id.status_code == 201
        assert by_id.json()["trigger"] == {"type": "schedule", "scheduleId": "sch_01"}

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({}, "pipelineId"),
            ({"pipelineId": "pl_doesnotexist"}, "pipelineId"),
            ({"pipelineId": 12}, "pipelineId"),
            ({"pipelineId": "{pipeline}", "gateway": "nope"}, "gateway"),
            ({"pipelineId": "{pipeline}", "trigger": "cron"}, "trigger"),
            ({"pipelineId": "{pipeline}", "trigger": {"scheduleId": "x"}}, "trigger"),
            ({"pipelineId": "{pipeline}", "colour": "red"}, "colour"),
        ],
    )
    def test_refuses_bad_bodies_and_creates_nothing(self, key_client, pipeline, body, field):
        body = {k: (pipeline.public_id if v == "{pipeline}" else v) for k, v in body.items()}
        response = key_client.post("/api/elt/runs", body, format="json")
        assert response.status_code == 400, response.content
        assert field in response.json()["errors"]
        assert not Run.objects.exists()


class TestLifecycle:
    def test_typical_sequence_sets_times_and_reports_everything(self, agent_client, run):
        claimed = patch(agent_client, run, {"status": "running"})
        assert claimed.status_code == 200
        assert claimed.json()["startedAt"] is not None
        patch(agent_client, run, {"appendLog": {"level": "info", "message": "Started JDBC read"}})
        patch(
            agent_client,
            run,
            {"appendTelemetrySample": {"rowsLoaded": 10, "bytesLoaded": 100, "progress": 5}},
        )
        patch(
            agent_client,
            run,
            {"telemetrySummary": {"rowsLoaded": 10, "currentPhase": "extract"}},
        )
        done = patch(
            agent_client,
            run,
            {
                "status": "succeeded",
                "telemetrySummary": {"rowsLoaded": 2450000, "progress": 100},
            },
        )
        assert done.status_code == 200
        body = done.json()
        assert body["status"] == "succeeded"
        assert body["finishedAt"] is not None
        assert body["durationSeconds"] >= 0
        assert body["telemetry"]["summary"] == {
            "rowsLoaded": 2450000,
            "currentPhase": "extract",
            "progress": 100,
        }
        assert body["telemetry"]["samples"][0]["rowsLoaded"] == 10
        assert body["logEntries"][0]["message"] == "Started JDBC read"
        run.refresh_from_db()
        assert run.rows_loaded == 2450000 and run.progress == 100

    @pytest.mark.parametrize(
        ("path", "allowed"),
        [
            (["running"], True),
            (["canceled"], True),
            (["failed"], True),
            (["succeeded"], False),
            (["cancel_requested"], False),
            (["running", "cancel_requested", "succeeded"], True),
            (["running", "cancel_requested", "canceled"], True),
            (["running", "cancel_requested", "running"], False),
            (["running", "queued"], False),
            (["running", "failed", "running"], False),
            (["running", "succeeded", "failed"], False),
            (["canceled", "running"], False),
        ],
    )
    def test_transition_table(self, agent_client, run, path, allowed):
        responses = [patch(agent_client, run, {"status": status}) for status in path]
        *before, last = responses
        assert all(response.status_code == 200 for response in before)
        if allowed:
            assert last.status_code == 200
            assert last.json()["status"] == path[-1]
        else:
            assert last.status_code == 409, last.content
            assert last.json()["errors"]["status"]
            run.refresh_from_db()
            assert run.status == (path[-2] if len(path) > 1 else "queued")

    def test_cancelled_spelling_is_accepted_and_answered_as_canceled(self, agent_client, run):
        response = patch(agent_client, run, {"status": "cancelled"})
        assert response.json()["status"] == "canceled"

    def test_repeating_a_final_status_is_a_no_op(self, agent_client, running_run):
        first = patch(agent_client, running_run, {"status": "succeeded"}).json()
        again = patch(agent_client, running_run, {"status": "succeeded"})
        assert again.status_code == 200
        assert again.json()["finishedAt"] == first["finishedAt"]

    def test_second_claim_is_refused(self, agent_client, running_run):
        response = patch(agent_client, running_run, {"status": "running"})
        assert response.status_code == 409

    def test_runner_learns_of_cancel_request_in_patch_response_and_poll(
        self, agent_client, running_run
    ):
        from runs.services import run_cancel

        run_cancel(actor=Actor.system(), run=running_run)
        response = patch(
            agent_client, running_run, {"appendLog": {"level": "info", "message": "x"}}
        )
        assert response.json()["status"] == "cancel_requested"
        polled = agent_client.get("/api/agent/runs").json()["data"]
        assert [item["id"] for item in polled] == [running_run.public_id]
        assert patch(agent_client, running_run, {"status": "canceled"}).json()["status"] == (
            "canceled"
        )

    def test_runner_may_send_its_own_times(self, agent_client, run):
        body = patch(
            agent_client,
            run,
            {
                "status": "succeeded" if False else "running",
                "startedAt": "2025-03-27T02:00:00Z",
            },
        ).json()
        assert body["startedAt"] == "2025-03-27T02:00:00Z"
        body = patch(
            agent_client,
            run,
            {"status": "succeeded", "finishedAt": "2025-03-27T02:18:42+00:00"},
        ).json()
        assert body["finishedAt"] == "2025-03-27T02:18:42Z"
        assert body["durationSeconds"] == 1122

    def test_logs_and_telemetry_may_be_backfilled_after_the_run_finished(
        self, agent_client, running_run
    ):
        patch(agent_client, running_run, {"status": "failed", "errorSummary": "boom"})
        response = patch(
            agent_client,
            running_run,
            {
                "logEntries": [
                    {"at": "2025-03-27T02:00:06Z", "level": "info", "message": "a"},
                    {
                        "at": "2025-03-27T02:00:07Z",
                        "level": "error",
                        "message": "b",
                        "nodeId": "n1",
                    },
                ],
                "telemetrySamples": [{"at": "2025-03-27T02:00:06Z", "rowsLoaded": 1}],
            },
        )
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "failed"
        assert body["logEntries"] == [
            {"at": "2025-03-27T02:00:06Z", "level": "info", "message": "a"},
            {"at": "2025-03-27T02:00:07Z", "level": "error", "message": "b", "nodeId": "n1"},
        ]
        assert body["telemetry"]["samples"] == [{"at": "2025-03-27T02:00:06Z", "rowsLoaded": 1}]


class TestFields:
    def test_append_log_sets_at_to_request_time(self, agent_client, run):
        before = datetime.now(UTC)
        body = patch(
            agent_client,
            run,
            {
                "appendLog": {
                    "level": "warn",
                    "message": "slow",
                    "nodeId": "n_source",
                    "at": "2020-01-01T00:00:00Z",
                }
            },
        ).json()
        entry = body["logEntries"][-1]
        assert entry["level"] == "warn" and entry["nodeId"] == "n_source"
        at = datetime.fromisoformat(entry["at"])
        assert before - timedelta(seconds=1) <= at <= datetime.now(UTC) + timedelta(seconds=1)

    def test_log_entries_replace_keeps_the_newest_500(self, agent_client, run):
        entries = [{"level": "info", "message": f"line {i}"} for i in range(600)]
        body = patch(agent_client, run, {"logEntries": entries}).json()
        assert len(body["logEntries"]) == 500
        assert body["logEntries"][0]["message"] == "line 100"
        assert body["logEntries"][-1]["message"] == "line 599"
        assert LogLine.objects.filter(run=run).count() == 500

    def test_append_keeps_the_newest_500_of_520(self, agent_client, run):
        for i in range(520):
            response = patch(
                agent_client,
                run,
                {"appendLog": {"level": "info", "message": str(i)}},
                HTTP_PREFER="return=minimal",
            )
            assert response.status_code == 200
        body = agent_client.get(agent_url(run)).json()
        messages = [entry["message"] for entry in body["logEntries"]]
        assert messages == [str(i) for i in range(20, 520)]
        # Physical trimming is batched: never more than one batch above the cap.
        assert LogLine.objects.filter(run=run).count() <= 600

    def test_samples_are_capped_at_2000_newest(self, agent_client, run):
        samples = [{"rowsLoaded": i, "at": "2025-03-27T02:00:00Z"} for i in range(2100)]
        body = patch(agent_client, run, {"telemetrySamples": samples}).json()
        values = [sample["rowsLoaded"] for sample in body["telemetry"]["samples"]]
        assert values == list(range(100, 2100))
        for i in range(150):
            patch(
                agent_client,
                run,
                {"appendTelemetrySample": {"rowsLoaded": 5000 + i}},
                HTTP_PREFER="return=minimal",
            )
        body = agent_client.get(agent_url(run)).json()
        values = [sample["rowsLoaded"] for sample in body["telemetry"]["samples"]]
        assert len(values) == 2000
        assert values[-1] == 5149 and values[0] == 250
        assert TelemetrySample.objects.filter(run=run).count() <= 2100

    def test_append_sample_defaults_at_to_now_and_keeps_custom_numeric_fields(
        self, agent_client, run
    ):
        body = patch(
            agent_client,
            run,
            {"appendTelemetrySample": {"rowsLoaded": 3, "cpuSeconds": 1.5}},
        ).json()
        sample = body["telemetry"]["samples"][0]
        assert sample["rowsLoaded"] == 3 and sample["cpuSeconds"] == 1.5 and sample["at"]

    def test_telemetry_summary_is_a_shallow_merge(self, agent_client, run):
        patch(agent_client, run, {"telemetrySummary": {"rowsLoaded": 1, "region": "eu"}})
        body = patch(
            agent_client,
            run,
            {"telemetrySummary": {"bytesLoaded": 9, "currentResource": "accounts"}},
        ).json()
        assert body["telemetry"]["summary"] == {
            "rowsLoaded": 1,
            "region": "eu",
            "bytesLoaded": 9,
            "currentResource": "accounts",
        }

    def test_nodes_are_upserted_by_node_id(self, agent_client, run):
        patch(
            agent_client,
            run,
            {
                "nodes": [
                    {
                        "nodeId": "n_source",
                        "type": "source.postgres",
                        "status": "running",
                        "startedAt": "2025-03-27T02:00:05Z",
                    },
                    {"nodeId": "n_sink", "type": "destination.snowflake", "status": "pending"},
                ]
            },
        )
        body = patch(
            agent_client,
            run,
            {
                "nodes": [
                    {
                        "nodeId": "n_source",
                        "status": "succeeded",
                        "finishedAt": "2025-03-27T02:04:10Z",
                        "metrics": {"rowsOut": 2450000},
                    },
                ]
            },
        ).json()
        source, sink = body["nodes"]
        assert source == {
            "nodeId": "n_source",
            "type": "source.postgres",
            "status": "succeeded",
            "startedAt": "2025-03-27T02:00:05Z",
            "finishedAt": "2025-03-27T02:04:10Z",
            "retries": 0,
            "metrics": {"rowsOut": 2450000},
        }
        assert sink["status"] == "pending"

    def test_error_summary_and_messages_are_scrubbed_before_storage(self, agent_client, run):
        secret = "hunter2-very-secret"
        patch(
            agent_client,
            run,
            {
                "errorSummary": f"connect failed: postgres://etl:{secret}@db:5432/crm",
                "appendLog": {"level": "error", "message": f"password={secret} rejected"},
                "telemetrySummary": {"source": f"mysql://app:{secret}@db/x"},
                "nodes": [
                    {"nodeId": "n1", "status": "failed", "metrics": {"dsn": f"token={secret}"}}
                ],
            },
        )
        run.refresh_from_db()
        assert secret not in str(run.telemetry_summary)
        assert secret not in str(run.nodes.get().metrics)
        assert secret not in run.error_summary
        assert "postgres://etl:[REDACTED]@db:5432/crm" in run.error_summary
        message = LogLine.objects.get(run=run).message
        assert secret not in message and "[REDACTED]" in message

    def test_long_messages_are_truncated_to_the_documented_maximum(self, agent_client, run):
        body = patch(
            agent_client, run, {"appendLog": {"level": "info", "message": "x" * 50_000}}
        ).json()
        message = body["logEntries"][0]["message"]
        assert len(message) == 10_000 and message.endswith("[truncated]")

    def test_several_fields_apply_together_or_not_at_all(self, agent_client, running_run):
        before = snapshot(running_run)
        response = patch(
            agent_client,
            running_run,
            {
                "appendLog": {"level": "info", "message": "kept?"},
                "telemetrySummary": {"rowsLoaded": 5},
                "status": "queued",
            },
        )
        assert response.status_code == 409
        assert snapshot(running_run) == before

    def test_empty_patch_is_a_heartbeat(self, agent_client, running_run):
        Run.objects.filter(pk=running_run.pk).update(last_report_at=None)
        assert patch(agent_client, running_run, {}).status_code == 200
        running_run.refresh_from_db()
        assert running_run.last_report_at is not None

    def test_prefer_minimal_leaves_out_lists(self, agent_client, run):
        response = patch(
            agent_client,
            run,
            {"appendLog": {"level": "info", "message": "x"}},
            HTTP_PREFER="return=minimal",
        )
        body = response.json()
        assert response["Preference-Applied"] == "return=minimal"
        assert "logEntries" not in body and "samples" not in body["telemetry"]
        assert body["status"] == "queued"


class TestIdempotency:
    def test_a_retried_append_with_the_same_key_is_stored_once(self, agent_client, run):
        body = {"appendLog": {"level": "info", "message": "once"}}
        for _ in range(3):
            assert patch(agent_client, run, body, HTTP_IDEMPOTENCY_KEY="k-1").status_code == 200
        patch(agent_client, run, body, HTTP_IDEMPOTENCY_KEY="k-2")
        assert LogLine.objects.filter(run=run).count() == 2

    def test_a_retried_claim_with_the_same_key_is_not_a_conflict(self, agent_client, run):
        first = patch(agent_client, run, {"status": "running"}, HTTP_IDEMPOTENCY_KEY="claim-1")
        retry = patch(agent_client, run, {"status": "running"}, HTTP_IDEMPOTENCY_KEY="claim-1")
        assert first.status_code == retry.status_code == 200
        rival = patch(agent_client, run, {"status": "running"}, HTTP_IDEMPOTENCY_KEY="claim-2")
        assert rival.status_code == 409

    def test_a_refused_patch_leaves_no_receipt(self, agent_client, run):
        patch(agent_client, run, {"status": "succeeded"}, HTTP_IDEMPOTENCY_KEY="k")
        assert (
            patch(agent_client, run, {"status": "running"}, HTTP_IDEMPOTENCY_KEY="k").status_code
            == 200
        )

    def test_a_bad_key_is_refused(self, agent_client, run):
        response = patch(agent_client, run, {}, HTTP_IDEMPOTENCY_KEY="x" * 201)
        assert response.status_code == 400
        assert "Idempotency-Key" in response.json()["errors"]


class TestAuth:
    def test_elt_routes_work_with_an_api_key(self, key_client, run):
        assert key_client.get(elt_url(run)).status_code == 200
        response = key_client.patch(elt_url(run), {"status": "running"}, format="json")
        assert response.status_code == 200

    @pytest.mark.parametrize(
        "header",
        [None, "Bearer", "Bearer a b", "Basic Zm9vOmJhcg==", "Bearer gwt_unknown", "Bearer eltk_x"],
    )
    def test_agent_routes_refuse_missing_malformed_and_unknown_tokens(self, run, header):
        client = APIClient()
        if header:
            client.credentials(HTTP_AUTHORIZATION=header)
        before = snapshot(run)
        response = client.patch(agent_url(run), {"status": "running"}, format="json")
        assert response.status_code == 401, response.content
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert response.json()["detail"]
        assert snapshot(run) == before

    def test_revoked_and_expired_tokens_are_refused_at_once(self, gateway, run):
        token, raw = gateway_token_issue(actor=Actor.system(), gateway=gateway)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert client.get(agent_url(run)).status_code == 200
        credential_revoke(actor=Actor.system(), credential=token)
        assert client.get(agent_url(run)).status_code == 401
        _, raw = gateway_token_issue(
            actor=Actor.system(),
            gateway=gateway,
            expires_at=datetime.now(UTC) - timedelta(seconds=1),
        )
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert client.get(agent_url(run)).status_code == 401

    def test_gateway_token_is_refused_on_elt_routes(self, gateway_token, run, pipeline):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {gateway_token}")
        assert client.get(elt_url(run)).status_code == 401
        response = client.post("/api/elt/runs", {"pipelineId": pipeline.public_id}, format="json")
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")

    def test_api_key_and_session_are_refused_on_agent_routes(self, key_client, user, run):
        assert key_client.get(agent_url(run)).status_code == 401
        client = APIClient()
        client.force_login(user)
        assert client.get(agent_url(run)).status_code == 401
        assert client.get("/api/agent/runs").status_code == 401

    def test_gateway_cannot_see_or_touch_another_gateways_run(self, agent_client):
        foreign = RunFactory(gateway=GatewayFactory(name="other"))
        untargeted = RunFactory(gateway=None)
        for run in (foreign, untargeted):
            before = snapshot(run)
            assert agent_client.get(agent_url(run)).status_code == 404
            response = patch(agent_client, run, {"status": "running"})
            assert response.status_code == 404
            assert response.json() == agent_client.get("/api/agent/runs/run_nope").json()
            assert snapshot(run) == before
        assert agent_client.get("/api/agent/runs").json()["data"] == []

    def test_session_patch_needs_csrf(self, user, run):
        client = Client(enforce_csrf_checks=True)
        client.force_login(user)
        before = snapshot(run)
        response = client.patch(
            elt_url(run), {"status": "running"}, content_type="application/json"
        )
        assert response.status_code == 403
        assert snapshot(run) == before
        client.get("/admin/login/")  # any page that sets the CSRF cookie
        token = client.cookies["csrftoken"].value
        response = client.patch(
            elt_url(run),
            {"status": "running"},
            content_type="application/json",
            HTTP_X_CSRFTOKEN=token,
        )
        assert response.status_code == 200

    def test_anonymous_is_refused_everywhere(self, run, pipeline):
        client = APIClient()
        assert client.get(elt_url(run)).status_code == 401
        assert client.patch(elt_url(run), {}, format="json").status_code == 401
        assert client.post("/api/elt/runs", {"pipelineId": pipeline.public_id}).status_code == 401
        assert client.get("/api/agent/runs").status_code == 401

    def test_inactive_users_key_is_refused(self, run):
        from gateways.services import api_key_issue

        user = UserFactory(username="gone", is_active=False)
        _, raw = api_key_issue(actor=Actor.system(), user=user)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert client.get(elt_url(run)).status_code == 401

    def test_agent_poll_lists_queued_and_cancel_requested_oldest_first(self, agent_client, gateway):
        from runs.models import RunStatus

        old = RunFactory(gateway=gateway, created_at=datetime(2025, 1, 1, tzinfo=UTC))
        new = RunFactory(gateway=gateway)
        RunFactory(gateway=gateway, status=RunStatus.RUNNING)
        stopping = RunFactory(gateway=gateway, status=RunStatus.CANCEL_REQUESTED)
        RunFactory(gateway=gateway, status=RunStatus.SUCCEEDED)
        data = agent_client.get("/api/agent/runs").json()["data"]
        assert [item["id"] for item in data] == [old.public_id, new.public_id, stopping.public_id]
        assert {item["status"] for item in data} == {"queued", "cancel_requested"}
