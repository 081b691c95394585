"""``/api/webhooks``: manage webhook endpoints. Parse, call one service or selector, respond."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response

from common.actors import actor_from_request
from common.api.params import HasActionPermission
from common.api.views import ApiViewSet
from common.roles import Perm
from gateways.authentication import IsPerson
from pipelines.models import Pipeline
from webhooks import selectors, services
from webhooks.api.serializers import (
    WebhookEndpointCreateInputSerializer,
    WebhookEndpointListOutputSerializer,
    WebhookEndpointOutputSerializer,
    WebhookEndpointUpdateInputSerializer,
    WebhookEndpointWithSecretOutputSerializer,
    WebhookTestOutputSerializer,
)
from webhooks.models import WebhookEndpoint

ERRORS = {
    400: OpenApiResponse(description="Invalid input: `errors` names each field at fault."),
    401: OpenApiResponse(description="Not signed in and no valid API key."),
    403: OpenApiResponse(description="Missing the model permission, or a gateway token."),
    404: OpenApiResponse(description="No endpoint with this id."),
}


def _pipeline(public_id: str | None) -> Pipeline | None:
    if public_id is None:
        return None
    pipeline = Pipeline.objects.filter(public_id=public_id).first()
    if pipeline is None:
        raise exceptions.ValidationError({"pipelineId": [f"No pipeline with id '{public_id}'."]})
    return pipeline


@extend_schema_view(
    retrieve=extend_schema(
        summary="Get a webhook endpoint",
        responses={200: WebhookEndpointOutputSerializer, 401: ERRORS[401], 404: ERRORS[404]},
    ),
    create=extend_schema(
        summary="Create a webhook endpoint",
        description="Answers with the signing secret (`whsec_...`), shown only this once.",
        request=WebhookEndpointCreateInputSerializer,
        responses={201: WebhookEndpointWithSecretOutputSerializer, **ERRORS},
    ),
    partial_update=extend_schema(
        summary="Change a webhook endpoint",
        description="Setting `enabled: true` also clears the failure streak and reason.",
        request=WebhookEndpointUpdateInputSerializer,
        responses={200: WebhookEndpointOutputSerializer, **ERRORS},
    ),
    destroy=extend_schema(
        summary="Delete a webhook endpoint",
        responses={204: None, 401: ERRORS[401], 403: ERRORS[403], 404: ERRORS[404]},
    ),
)
class WebhookEndpointViewSet(ApiViewSet):
    permission_classes = [IsPerson, HasActionPermission]
    # Reads need a viewer; every write is checked (and recorded) by its service.
    action_permissions = {
        "list_endpoints": Perm.VIEW_WEBHOOK_ENDPOINTS,
        "retrieve": Perm.VIEW_WEBHOOK_ENDPOINTS,
    }
    lookup_url_kwarg = "id"

    def _get(self, public_id: str) -> WebhookEndpoint:
        endpoint = selectors.webhook_endpoint_get(public_id=public_id)
        if endpoint is None:
            raise exceptions.NotFound("No webhook endpoint with this id.")
        return endpoint

    # Not named "list": the answer is one {"data": [...]} object, not a bare array.
    @extend_schema(
        operation_id="api_webhooks_list",
        summary="List webhook endpoints",
        responses={200: WebhookEndpointListOutputSerializer, 401: ERRORS[401]},
    )
    def list_endpoints(self, request: Request) -> Response:
        endpoints = selectors.webhook_endpoint_list()
        return Response({"data": WebhookEndpointOutputSerializer(endpoints, many=True).data})

    def retrieve(self, request: Request, id: str) -> Response:
        return Response(WebhookEndpointOutputSerializer(self._get(id)).data)

    def create(self, request: Request) -> Response:
        serializer = WebhookEndpointCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        endpoint, secret = services.webhook_endpoint_create(
            actor=actor_from_request(request),
            url=data["url"],
            events=data["events"],
            pipeline=_pipeline(data.get("pipelineId")),
            description=data.get("description", ""),
            enabled=data["enabled"],
        )
        body = WebhookEndpointWithSecretOutputSerializer(endpoint, context={"secret": secret})
        return Response(body.data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, id: str) -> Response:
        endpoint = self._get(id)
        serializer = WebhookEndpointUpdateInputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        changes = dict(serializer.validated_data)
        if "pipelineId" in changes:
            changes["pipeline"] = _pipeline(changes.pop("pipelineId"))
        endpoint = services.webhook_endpoint_update(
            actor=actor_from_request(request), endpoint=endpoint, changes=changes
        )
        return Response(WebhookEndpointOutputSerializer(endpoint).data)

    def destroy(self, request: Request, id: str) -> Response:
        endpoint = self._get(id)
        services.webhook_endpoint_delete(actor=actor_from_request(request), endpoint=endpoint)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Rotate the signing secret",
        description="Answers with the new secret, shown only this once. The previous secret "
        "keeps signing beside it (a second `v1,` signature) for 24 hours.",
        request=None,
        responses={200: WebhookEndpointWithSecretOutputSerializer, **ERRORS},
    )
    def rotate_secret(self, request: Request, id: str) -> Response:
        endpoint = self._get(id)
        secret = services.webhook_endpoint_secret_rotate(
            actor=actor_from_request(request), endpoint=endpoint
        )
        endpoint = self._get(id)
        body = WebhookEndpointWithSecretOutputSerializer(endpoint, context={"secret": secret})
        return Response(body.data)

    @extend_schema(
        summary="Send a test event",
        description="Queues a signed `webhook.test` event to this endpoint alone.",
        request=None,
        responses={202: WebhookTestOutputSerializer, **ERRORS},
    )
    def send_test(self, request: Request, id: str) -> Response:
        event = services.webhook_endpoint_send_test(
            actor=actor_from_request(request), endpoint=self._get(id)
        )
        return Response(
            {"eventId": event.public_id, "deliveryStatus": "pending"},
            status=status.HTTP_202_ACCEPTED,
        )
