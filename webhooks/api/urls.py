from django.urls import path

from webhooks.api.views import WebhookEndpointViewSet

app_name = "webhooks-api"

urlpatterns = [
    path(
        "webhooks",
        WebhookEndpointViewSet.as_view({"get": "list_endpoints", "post": "create"}),
        name="endpoint-list",
    ),
    path(
        "webhooks/<str:id>",
        WebhookEndpointViewSet.as_view(
            {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}
        ),
        name="endpoint-detail",
    ),
    path(
        "webhooks/<str:id>/rotate-secret",
        WebhookEndpointViewSet.as_view({"post": "rotate_secret"}),
        name="endpoint-rotate-secret",
    ),
    path(
        "webhooks/<str:id>/test",
        WebhookEndpointViewSet.as_view({"post": "send_test"}),
        name="endpoint-test",
    ),
]
