from rest_framework import serializers

from common.time import iso
from webhooks import services
from webhooks.models import EventType, WebhookEndpoint


class StrictFieldsMixin:
    """Refuse fields the serializer does not know, instead of silently ignoring them."""

    def validate(self, attrs):
        if isinstance(self.initial_data, dict):
            unknown = sorted(set(self.initial_data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return attrs


class EventsField(serializers.ListField):
    child = serializers.CharField()

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        try:
            return services.webhook_event_types_parse(values)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class WebhookEndpointCreateInputSerializer(StrictFieldsMixin, serializers.Serializer):
    url = serializers.CharField(max_length=2000, help_text="http(s) URL of a public host.")
    events = EventsField(help_text=f"Any of {', '.join(EventType.values)}.")
    pipelineId = serializers.CharField(
        required=False, allow_null=True, help_text="Only runs of this pipeline; null for all."
    )
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    enabled = serializers.BooleanField(required=False, default=True)


class WebhookEndpointUpdateInputSerializer(StrictFieldsMixin, serializers.Serializer):
    url = serializers.CharField(max_length=2000, required=False)
    events = EventsField(required=False)
    pipelineId = serializers.CharField(required=False, allow_null=True)
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    enabled = serializers.BooleanField(required=False)


class WebhookEndpointOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    url = serializers.CharField()
    description = serializers.CharField()
    events = serializers.ListField(child=serializers.CharField())
    pipelineId = serializers.SerializerMethodField()
    enabled = serializers.BooleanField()
    disabledAt = serializers.SerializerMethodField()
    disabledReason = serializers.CharField(source="disabled_reason")
    secretPrefix = serializers.CharField(source="secret_prefix")
    previousSecretExpiresAt = serializers.SerializerMethodField()
    createdAt = serializers.SerializerMethodField()
    updatedAt = serializers.SerializerMethodField()

    def get_pipelineId(self, endpoint: WebhookEndpoint) -> str | None:
        return endpoint.pipeline.public_id if endpoint.pipeline_id else None

    def get_disabledAt(self, endpoint: WebhookEndpoint) -> str | None:
        return iso(endpoint.disabled_at)

    def get_previousSecretExpiresAt(self, endpoint: WebhookEndpoint) -> str | None:
        live = len(endpoint.signing_secrets()) > 1
        return iso(endpoint.previous_secret_expires_at) if live else None

    def get_createdAt(self, endpoint: WebhookEndpoint) -> str | None:
        return iso(endpoint.created_at)

    def get_updatedAt(self, endpoint: WebhookEndpoint) -> str | None:
        return iso(endpoint.updated_at)


class WebhookEndpointWithSecretOutputSerializer(WebhookEndpointOutputSerializer):
    secret = serializers.SerializerMethodField(
        help_text="The signing secret. Shown only in this response: store it now."
    )

    def get_secret(self, endpoint: WebhookEndpoint) -> str:
        return self.context["secret"]


class WebhookEndpointListOutputSerializer(serializers.Serializer):
    data = WebhookEndpointOutputSerializer(many=True)


class WebhookTestOutputSerializer(serializers.Serializer):
    eventId = serializers.CharField()
    deliveryStatus = serializers.CharField()
