from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from common.actors import actor_from_request
from common.errors import InvalidInput
from webhooks import services
from webhooks.models import (
    EventType,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)

USER_DISABLED = "Disabled by a user."


class WebhookEndpointForm(forms.ModelForm):
    events = forms.MultipleChoiceField(
        choices=EventType.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "events", "pipeline", "enabled", "description"]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            services.webhook_url_check(url)
        except InvalidInput as exc:
            raise ValidationError(exc.errors["url"]) from None
        return url


def _secret_message(endpoint: WebhookEndpoint, secret: str) -> str:
    return (
        f"Signing secret for {endpoint.public_id}: {secret} — copy it now, "
        "it will not be shown again."
    )


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = [
        "public_id",
        "url",
        "event_list",
        "pipeline",
        "enabled",
        "disabled_reason",
        "failing_since",
        "secret_prefix",
        "created_at",
    ]
    list_filter = ["enabled", "pipeline"]
    list_select_related = ["pipeline"]
    search_fields = ["public_id", "url", "description"]
    readonly_fields = [
        "public_id",
        "secret_prefix",
        "previous_secret_expires_at",
        "disabled_at",
        "disabled_reason",
        "failing_since",
        "created_at",
        "updated_at",
    ]
    actions = ["rotate_secret", "send_test_event"]

    @admin.display(description="events")
    def event_list(self, endpoint: WebhookEndpoint) -> str:
        return ", ".join(endpoint.events)

    @admin.display(description="secret")
    def secret_prefix(self, endpoint: WebhookEndpoint) -> str:
        return endpoint.secret_prefix

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        if change:
            current = WebhookEndpoint.objects.get(pk=obj.pk)
            changes = {name: data[name] for name in form.changed_data}
            updated = services.webhook_endpoint_update(
                actor=actor_from_request(request), endpoint=current, changes=changes
            )
            obj.__dict__.update(updated.__dict__)
            return
        endpoint, secret = services.webhook_endpoint_create(
            actor=actor_from_request(request),
            url=data["url"],
            events=data["events"],
            pipeline=data.get("pipeline"),
            description=data.get("description", ""),
            enabled=data.get("enabled", True),
        )
        obj.__dict__.update(endpoint.__dict__)
        self.message_user(request, _secret_message(endpoint, secret), messages.WARNING)

    def delete_model(self, request, obj) -> None:
        services.webhook_endpoint_delete(actor=actor_from_request(request), endpoint=obj)

    def delete_queryset(self, request, queryset) -> None:
        actor = actor_from_request(request)
        for endpoint in queryset:
            services.webhook_endpoint_delete(actor=actor, endpoint=endpoint)

    def changelist_view(self, request: HttpRequest, extra_context=None):
        auto_disabled = (
            WebhookEndpoint.objects.filter(enabled=False)
            .exclude(disabled_reason__in=["", USER_DISABLED])
            .only("public_id", "disabled_reason", "disabled_at")
        )
        for endpoint in auto_disabled:
            self.message_user(
                request,
                f"Webhook endpoint {endpoint.public_id} was disabled automatically on "
                f"{endpoint.disabled_at:%Y-%m-%d %H:%M} UTC: {endpoint.disabled_reason} "
                "Fix the receiver, then enable it again.",
                messages.WARNING,
            )
        return super().changelist_view(request, extra_context)

    @admin.action(
        description="Rotate the signing secret (old one signs for 24 h more)",
        permissions=["change"],
    )
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            secret = services.webhook_endpoint_secret_rotate(
                actor=actor_from_request(request), endpoint=endpoint
            )
            self.message_user(request, _secret_message(endpoint, secret), messages.WARNING)

    @admin.action(description="Send a test event", permissions=["change"])
    def send_test_event(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            event = services.webhook_endpoint_send_test(
                actor=actor_from_request(request), endpoint=endpoint
            )
            self.message_user(
                request, f"Test event {event.public_id} queued for {endpoint.public_id}."
            )


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = ["attempted_at", "succeeded", "status_code", "latency_ms", "error", "response_body"]
    readonly_fields = fields
    ordering = ["attempted_at", "id"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class WebhookDeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    extra = 0
    can_delete = False
    fields = [
        "endpoint",
        "status",
        "attempt_count",
        "last_status_code",
        "last_error",
        "last_attempt_at",
        "next_attempt_at",
    ]
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "type", "run", "created_at"]
    list_filter = ["type"]
    list_select_related = ["run"]
    search_fields = ["public_id", "run__public_id"]
    fields = ["public_id", "type", "run", "created_at", "body"]
    readonly_fields = fields
    inlines = [WebhookDeliveryInline]
    actions = ["redeliver"]

    @admin.action(description="Redeliver to every endpoint it was sent to")
    def redeliver(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        actor = actor_from_request(request)
        count = sum(
            services.webhook_event_redeliver(actor=actor, event=event) for event in queryset
        )
        self.message_user(request, f"{count} deliveries queued again (same webhook-id).")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "event",
        "endpoint",
        "status",
        "attempt_count",
        "last_status_code",
        "last_attempt_at",
        "next_attempt_at",
    ]
    list_filter = ["status", "endpoint"]
    list_select_related = ["event", "endpoint"]
    search_fields = ["event__public_id", "event__run__public_id", "endpoint__public_id"]
    fields = [
        "event",
        "endpoint",
        "status",
        "attempt_count",
        "next_attempt_at",
        "last_attempt_at",
        "last_status_code",
        "last_error",
        "created_at",
        "completed_at",
    ]
    readonly_fields = fields
    inlines = [WebhookAttemptInline]
    actions = ["redeliver"]

    @admin.action(description="Redeliver (same webhook-id, fresh retry schedule)")
    def redeliver(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        actor = actor_from_request(request)
        count = 0
        for delivery in queryset.select_related("event", "endpoint"):
            services.webhook_delivery_redeliver(actor=actor, delivery=delivery)
            count += 1
        self.message_user(request, f"{count} deliveries queued again (same webhook-id).")
