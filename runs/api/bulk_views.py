"""Saved views (``/api/views``) and bulk actions over runs (``/api/runs/bulk``).

Each view parses its input, calls one service of ``runs.saved_views`` or ``runs.bulk`` (which
check the actor and write the audit trail) and answers. Every refusal is the JSON of
``common.api.errors``, naming the field.
"""

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from common.actors import actor_from_request
from common.api.fields import (
    StrictBooleanField,
    StrictCharField,
    StrictChoiceField,
    StrictSerializer,
)
from common.api.params import HasActionPermission
from common.api.schema import error_responses
from common.api.views import ApiView
from common.roles import Perm
from common.time import iso
from gateways.authentication import ApiKeyAuthentication, IsPerson
from runs import bulk, saved_views
from runs.models import BulkAction


class SavedViewCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=saved_views.MAX_NAME)
    query = StrictCharField(
        allow_blank=True, max_length=saved_views.MAX_QUERY, trim_whitespace=False
    )
    shared = StrictBooleanField(required=False, default=False)


class SavedViewPatchSerializer(StrictSerializer):
    name = StrictCharField(required=False, max_length=saved_views.MAX_NAME)
    query = StrictCharField(
        required=False, allow_blank=True, max_length=saved_views.MAX_QUERY, trim_whitespace=False
    )
    shared = StrictBooleanField(required=False)


class SavedViewOutSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    query = serializers.CharField(help_text="The Runs page query string the view stands for.")
    url = serializers.CharField()
    shared = serializers.BooleanField()
    builtIn = serializers.BooleanField()
    owner = serializers.CharField(allow_null=True)
    mine = serializers.BooleanField()
    createdAt = serializers.DateTimeField(allow_null=True)
    updatedAt = serializers.DateTimeField(allow_null=True)


VIEW_ID_PARAMETER = OpenApiParameter("view_id", str, OpenApiParameter.PATH, description="View id.")


class _PersonView(ApiView):
    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [IsPerson, HasActionPermission]


@extend_schema(tags=["views"])
class SavedViewListView(_PersonView):
    action_permissions = {"get": Perm.VIEW_RUNS}

    @extend_schema(
        operation_id="views_list",
        responses={
            200: inline_serializer("SavedViewList", {"data": SavedViewOutSerializer(many=True)}),
            **error_responses(401, 403),
        },
        summary="Built-in views, your own and everyone's shared ones",
    )
    def get(self, request):
        user = request.user
        views: list[Any] = [
            *saved_views.builtin_views_opened(),
            *saved_views.saved_views_for(user=user),
        ]
        return Response({"data": [saved_views.view_out(view, user=user) for view in views]})

    @extend_schema(
        operation_id="views_create",
        request=SavedViewCreateSerializer,
        responses={201: SavedViewOutSerializer, **error_responses(400, 401, 403)},
        summary="Save a view (shared ones need the operator role)",
    )
    def post(self, request):
        serializer = SavedViewCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        view = saved_views.saved_view_create(
            actor=actor_from_request(request), **serializer.validated_data
        )
        return Response(
            saved_views.view_out(view, user=request.user), status=status.HTTP_201_CREATED
        )


@extend_schema(tags=["views"], parameters=[VIEW_ID_PARAMETER])
class SavedViewDetailView(_PersonView):
    action_permissions = {"get": Perm.VIEW_RUNS}

    def _view(self, request, view_id: str):
        view = saved_views.saved_view_get(user=request.user, public_id=view_id)
        if view is None:
            raise NotFound("No saved view with this id.")
        return view

    @extend_schema(
        operation_id="views_retrieve",
        responses={200: SavedViewOutSerializer, **error_responses(401, 404)},
        summary="A saved view",
    )
    def get(self, request, view_id: str):
        return Response(saved_views.view_out(self._view(request, view_id), user=request.user))

    @extend_schema(
        operation_id="views_update",
        request=SavedViewPatchSerializer,
        responses={200: SavedViewOutSerializer, **error_responses(400, 401, 403, 404)},
        summary="Rename, re-query, share or unshare your view",
    )
    def patch(self, request, view_id: str):
        view = self._view(request, view_id)
        serializer = SavedViewPatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        view = saved_views.saved_view_update(
            actor=actor_from_request(request), view=view, changes=serializer.validated_data
        )
        return Response(saved_views.view_out(view, user=request.user))

    @extend_schema(
        operation_id="views_destroy",
        responses={204: None, **error_responses(401, 403, 404)},
        summary="Delete your view",
    )
    def delete(self, request, view_id: str):
        saved_views.saved_view_delete(
            actor=actor_from_request(request), view=self._view(request, view_id)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class BulkRequestSerializer(StrictSerializer):
    action = StrictChoiceField(BulkAction.choices)
    filter = serializers.JSONField(
        required=False, help_text="The list filters of GET /api/runs, as a JSON object."
    )
    ids = serializers.JSONField(required=False, help_text=f"Up to {bulk.MAX_IDS} run ids.")
    dryRun = StrictBooleanField(required=False, default=False)
    confirm = StrictBooleanField(required=False, default=False)
    snapshot = StrictCharField(
        required=False, help_text="A dry run's `snapshot`: touch only runs that existed then."
    )


def preview_out(preview: bulk.Preview) -> dict[str, Any]:
    return {
        "action": preview.action,
        "dryRun": True,
        "matched": preview.matched,
        "touch": preview.touch,
        "skip": preview.skip,
        "skipReasons": bulk.skip_reasons_out(preview.skip_reasons),
        "sample": [
            {
                "id": run.public_id,
                "status": run.status,
                "pipelineId": run.pipeline.public_id,
                "pipelineName": run.pipeline.name,
                "createdAt": iso(run.created_at),
            }
            for run in preview.sample
        ],
        "snapshot": preview.snapshot.token(),
        "snapshotAt": iso(preview.snapshot.at),
        "needsConfirm": preview.needs_confirm,
    }


@extend_schema(tags=["runs"])
class BulkView(_PersonView):
    @extend_schema(
        operation_id="runs_bulk",
        request=BulkRequestSerializer,
        responses={
            200: inline_serializer("BulkPreview", {"matched": serializers.IntegerField()}),
            202: inline_serializer("BulkJobAccepted", {"id": serializers.CharField()}),
            **error_responses(400, 401, 403),
        },
        summary="Bulk cancel or re-run over a filter or picked runs (operator)",
        description="`dryRun: true` answers the preview (touch and skip counts, skip reasons, "
        "the first few runs, a `snapshot`); otherwise 202 with the job, worked in the "
        "background (`GET /api/runs/bulk/{id}`). Over 100,000 matching runs needs "
        "`confirm: true`.",
    )
    def post(self, request):
        actor = actor_from_request(request)
        serializer = BulkRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        bulk.bulk_authorize(actor=actor, action=data["action"])
        selection = bulk.selection_parse(filter=data.get("filter"), ids=data.get("ids"))
        snapshot = bulk.snapshot_parse(data["snapshot"]) if "snapshot" in data else None
        if data["dryRun"]:
            preview = bulk.bulk_preview(
                actor=actor, action=data["action"], selection=selection, snapshot=snapshot
            )
            return Response(preview_out(preview))
        job = bulk.bulk_start(
            actor=actor,
            action=data["action"],
            selection=selection,
            snapshot=snapshot,
            confirm=data["confirm"],
        )
        return Response(bulk.bulk_job_out(job), status=status.HTTP_202_ACCEPTED)


@extend_schema(
    tags=["runs"],
    parameters=[OpenApiParameter("job_id", str, OpenApiParameter.PATH, description="Job id.")],
)
class BulkJobView(_PersonView):
    action_permissions = {"get": Perm.VIEW_RUNS}

    @extend_schema(
        operation_id="runs_bulk_retrieve",
        responses={
            200: inline_serializer("BulkJob", {"id": serializers.CharField()}),
            **error_responses(401, 404),
        },
        summary="A bulk job's progress and outcome",
    )
    def get(self, request, job_id: str):
        job = bulk.bulk_job_get(public_id=job_id)
        if job is None:
            raise NotFound("No bulk job with this id.")
        return Response(bulk.bulk_job_out(job))
