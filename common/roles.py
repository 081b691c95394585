"""The roles people hold, as Django groups (made by migration ``common.0002_roles``).

    viewer    reads the pages and the read API
    runner    creates runs and reports on them through ``/api/elt/runs`` (managed workers, CI)
    operator  a viewer who also cancels, triggers and re-runs runs, one by one or in bulk, and
              shares saved views with everyone

Superusers hold every permission. Gateways hold none: they act only on their own runs, through
the gateway routes. Services check permissions, never roles; the role only names, in a refusal,
what a person would need.
"""

from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"
    RUNNER = "runner"
    OPERATOR = "operator"


class Perm(StrEnum):
    VIEW_RUNS = "runs.view_run"
    REPORT_RUNS = "runs.report_run"
    TRIGGER_RUNS = "runs.trigger_run"
    CANCEL_RUNS = "runs.cancel_run"
    BULK_RUNS = "runs.bulk_run"
    SHARE_VIEWS = "runs.share_savedview"
    VIEW_PIPELINES = "pipelines.view_pipeline"
    ADD_PIPELINES = "pipelines.add_pipeline"
    CHANGE_PIPELINES = "pipelines.change_pipeline"
    VIEW_GATEWAYS = "gateways.view_gateway"
    VIEW_WEBHOOK_ENDPOINTS = "webhooks.view_webhookendpoint"
    ADD_WEBHOOK_ENDPOINTS = "webhooks.add_webhookendpoint"
    CHANGE_WEBHOOK_ENDPOINTS = "webhooks.change_webhookendpoint"
    DELETE_WEBHOOK_ENDPOINTS = "webhooks.delete_webhookendpoint"
    ISSUE_GATEWAY_TOKENS = "gateways.add_gatewaytoken"
    REVOKE_GATEWAY_TOKENS = "gateways.change_gatewaytoken"
    ISSUE_API_KEYS = "gateways.add_apikey"
    REVOKE_API_KEYS = "gateways.change_apikey"
    ADD_GATEWAYS = "gateways.add_gateway"


_READ = [Perm.VIEW_RUNS, Perm.VIEW_PIPELINES, Perm.VIEW_GATEWAYS, Perm.VIEW_WEBHOOK_ENDPOINTS]

ROLE_PERMISSIONS: dict[Role, list[Perm]] = {
    Role.VIEWER: _READ,
    Role.RUNNER: [Perm.REPORT_RUNS, Perm.TRIGGER_RUNS],
    Role.OPERATOR: [
        *_READ,
        Perm.TRIGGER_RUNS,
        Perm.CANCEL_RUNS,
        Perm.BULK_RUNS,
        Perm.SHARE_VIEWS,
    ],
}


def roles_for(perm: str) -> list[str]:
    """The roles that hold ``perm``, people's roles first (empty when only an admin's model
    permission does)."""
    return [
        role.value
        for role in (Role.VIEWER, Role.OPERATOR, Role.RUNNER)
        if perm in ROLE_PERMISSIONS[role]
    ]
