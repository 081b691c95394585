"""Admin for gateway tokens and API keys (gateways themselves: ``runs.admin``, beside their runs).

Secrets are issued through the services and their plaintext is shown once, on the page the POST
that created them redirects to (so a reload neither issues another nor shows it again). Across
that redirect the plaintext is split in two: a random pad in a short-lived cookie sent only to
that page, the plaintext XOR the pad in the session. Neither the database (the session row) nor
the browser alone holds the secret, the first view removes both, and the secret is never in a
message, a URL or the admin log. The page is sent with ``Cache-Control: no-store``.
"""

import secrets
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers

from common.actors import actor_from_request
from gateways.models import ApiKey, Credential, GatewayToken
from gateways.services import (
    api_key_issue,
    credential_revoke,
    gateway_token_issue,
    gateway_token_rotate,
)

_ISSUED_ATTR = "_issued_plaintext"
# The session's half of a secret waiting to be shown, and the cookie holding the pad.
_ISSUED_SESSION_KEY = "issued_secret"
_ISSUED_COOKIE = "issued_pad"
_ISSUED_COOKIE_SECONDS = 300


def _xor(data: bytes, pad: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, pad, strict=True))


def _credential_state(credential: Credential) -> str:
    if credential.revoked_at is not None:
        return "revoked"
    if credential.expires_at is not None and credential.expires_at <= timezone.now():
        return "expired"
    return "live"


class CredentialStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("live", "live"), ("expired", "expired"), ("revoked", "revoked")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "live":
            return queryset.filter(revoked_at__isnull=True).filter(
                models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
            )
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


class RotateForm(forms.Form):
    overlap = forms.TypedChoiceField(
        label="Old token stays valid for",
        coerce=int,
        initial=3600,
        choices=[
            (0, "no time: revoke it now"),
            (600, "10 minutes"),
            (3600, "1 hour"),
            (86400, "1 day"),
            (7 * 86400, "7 days"),
        ],
        help_text="Time for the gateway to switch to the new token.",
    )


class CredentialAdmin(admin.ModelAdmin):
    """Shared admin for bearer secrets: issue on add (plaintext shown once), revoke, never
    delete (the row is the record of who had access)."""

    list_per_page = 50
    show_full_result_count = False
    actions = ["revoke_selected"]
    change_form_template = "admin/gateways/credential_change_form.html"

    def issue(self, request: HttpRequest, obj: Credential) -> tuple[Credential, str]:
        raise NotImplementedError

    def get_queryset(self, request):
        return super().get_queryset(request).select_related(self.owner_field, "created_by")

    def get_readonly_fields(self, request, obj=None):
        shown = [
            "prefix",
            "state",
            "created_at",
            "created_by",
            "last_used_at",
            "last_used_ip",
            "revoked_at",
        ]
        if obj is None:
            return []
        return [*shown, self.owner_field]

    def get_fields(self, request, obj=None):
        if obj is None:
            return [self.owner_field, "name", "expires_at"]
        return [
            self.owner_field,
            "name",
            "prefix",
            "state",
            "created_at",
            "created_by",
            "last_used_at",
            "last_used_ip",
            "expires_at",
            "revoked_at",
        ]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="state")
    def state(self, obj: Credential) -> str:
        return _credential_state(obj)

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        # The admin's add form collected the fields; the service creates the row and the secret.
        credential, raw = self.issue(request, obj)
        for field in credential._meta.concrete_fields:
            setattr(obj, field.attname, getattr(credential, field.attname))
        obj._state.adding = False
        obj._state.db = credential._state.db
        setattr(request, _ISSUED_ATTR, raw)

    def render_issued(
        self, request: HttpRequest, credential: Credential, raw: str, *, note: str = ""
    ) -> HttpResponse:
        opts = self.model._meta
        context = {
            **self.admin_site.each_context(request),
            "opts": opts,
            "title": f"{opts.verbose_name.capitalize()} issued",
            "credential": credential,
            "plaintext": raw,
            "note": note,
            "change_url": reverse(
                f"admin:{opts.app_label}_{opts.model_name}_change", args=[credential.pk]
            ),
        }
        response = TemplateResponse(request, "admin/gateways/secret_issued.html", context)
        add_never_cache_headers(response)
        return response

    def redirect_to_issued(
        self, request: HttpRequest, credential: Credential, raw: str, *, note: str = ""
    ) -> HttpResponse:
        """Answer the POST that issued ``credential`` with a redirect to the page that shows
        ``raw`` once, the secret split between the session and a cookie (see the module)."""
        opts = self.model._meta
        plaintext = raw.encode()
        pad = secrets.token_bytes(len(plaintext))
        request.session[_ISSUED_SESSION_KEY] = {
            "model": opts.label_lower,
            "pk": credential.pk,
            "masked": _xor(plaintext, pad).hex(),
            "note": note,
        }
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_issued", args=[credential.pk])
        response = HttpResponseRedirect(url)
        response.set_cookie(
            _ISSUED_COOKIE,
            pad.hex(),
            max_age=_ISSUED_COOKIE_SECONDS,
            path=url,
            secure=settings.SESSION_COOKIE_SECURE,
            httponly=True,
            samesite="Strict",
        )
        add_never_cache_headers(response)
        return response

    def issued_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The issued secret, the first time only: later views (a reload, another browser)
        go to the credential's page, which says it cannot be shown again."""
        credential = self.get_object(request, object_id)
        if credential is None:
            raise Http404
        if not self.has_view_or_change_permission(request, credential):
            raise PermissionDenied
        held = request.session.get(_ISSUED_SESSION_KEY) or {}
        if held.get("model") == self.model._meta.label_lower and held.get("pk") == credential.pk:
            del request.session[_ISSUED_SESSION_KEY]
        else:
            held = {}
        raw = None
        try:
            masked = bytes.fromhex(held.get("masked", ""))
            pad = bytes.fromhex(request.COOKIES.get(_ISSUED_COOKIE, ""))
            if masked and len(pad) == len(masked):
                raw = _xor(masked, pad).decode()
        except ValueError:
            raw = None
        if raw is None:
            self.message_user(
                request,
                f"The secret of {credential} was shown once and cannot be shown again. If it "
                "was not copied, issue a new one and revoke this one.",
                messages.WARNING,
            )
            opts = self.model._meta
            response: HttpResponse = HttpResponseRedirect(
                reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[credential.pk])
            )
        else:
            response = self.render_issued(request, credential, raw, note=held.get("note", ""))
        response.delete_cookie(_ISSUED_COOKIE, path=request.path, samesite="Strict")
        return response

    def response_add(self, request, obj, post_url_continue=None):
        raw = getattr(request, _ISSUED_ATTR, None)
        if raw is None:
            return super().response_add(request, obj, post_url_continue)
        delattr(request, _ISSUED_ATTR)
        return self.redirect_to_issued(request, obj, raw)

    def add_view(self, request, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "show_save_and_add_another": False,
            "show_save_and_continue": False,
        }
        return super().add_view(request, form_url, extra_context)

    def _revoke(self, request: HttpRequest, credential: Credential) -> bool:
        revoked = credential_revoke(actor=actor_from_request(request), credential=credential)
        if revoked:
            self.log_change(request, credential, "Revoked.")
        return revoked

    @admin.action(description="Revoke selected", permissions=["change"])
    def revoke_selected(self, request, queryset):
        revoked = sum(self._revoke(request, credential) for credential in queryset)
        self.message_user(request, f"Revoked {revoked} of {len(queryset)} selected.")

    def get_urls(self):
        opts = self.model._meta
        name = f"{opts.app_label}_{opts.model_name}"
        return [
            path(
                "<path:object_id>/revoke/",
                self.admin_site.admin_view(self.revoke_view),
                name=f"{name}_revoke",
            ),
            path(
                "<path:object_id>/issued/",
                self.admin_site.admin_view(self.issued_view),
                name=f"{name}_issued",
            ),
            *super().get_urls(),
        ]

    def revoke_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        credential = self.get_object(request, object_id)
        if credential is None:
            raise Http404
        if not self.has_change_permission(request, credential):
            raise PermissionDenied
        opts = self.model._meta
        change_url = reverse(
            f"admin:{opts.app_label}_{opts.model_name}_change", args=[credential.pk]
        )
        if request.method == "POST":
            if self._revoke(request, credential):
                self.message_user(request, f"Revoked {credential}.", messages.SUCCESS)
            else:
                self.message_user(request, f"{credential} was already revoked.", messages.INFO)
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": opts,
            "title": f"Revoke {credential}?",
            "object": credential,
            "text": "Requests using it are refused from the very next one. This cannot be undone.",
            "button": "Yes, revoke",
            "cancel_url": change_url,
        }
        return TemplateResponse(request, "admin/gateways/confirm.html", context)


class GatewayTokenInline(admin.TabularInline):
    model = GatewayToken
    extra = 0
    can_delete = False
    show_change_link = True
    fields = [
        "prefix",
        "name",
        "state",
        "created_at",
        "created_by",
        "last_used_at",
        "last_used_ip",
        "expires_at",
        "revoked_at",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by", "gateway")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="state")
    def state(self, obj: GatewayToken) -> str:
        return _credential_state(obj)


@admin.register(GatewayToken)
class GatewayTokenAdmin(CredentialAdmin):
    owner_field = "gateway"
    list_display = [
        "prefix",
        "name",
        "gateway",
        "state",
        "created_at",
        "created_by",
        "last_used_at",
        "last_used_ip",
        "expires_at",
        "revoked_at",
    ]
    list_filter = [CredentialStateFilter, "gateway"]
    list_select_related = ["gateway", "created_by"]
    search_fields = ["prefix", "name", "gateway__name"]
    autocomplete_fields = ["gateway"]

    def issue(self, request, obj):
        return gateway_token_issue(
            actor=actor_from_request(request),
            gateway=obj.gateway,
            name=obj.name,
            expires_at=obj.expires_at,
        )

    def get_urls(self):
        return [
            path(
                "<path:object_id>/rotate/",
                self.admin_site.admin_view(self.rotate_view),
                name="gateways_gatewaytoken_rotate",
            ),
            *super().get_urls(),
        ]

    def rotate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        token = self.get_object(request, object_id)
        if token is None:
            raise Http404
        if not (self.has_change_permission(request, token) and self.has_add_permission(request)):
            raise PermissionDenied
        change_url = reverse("admin:gateways_gatewaytoken_change", args=[token.pk])
        if token.revoked_at is not None:
            self.message_user(request, "A revoked token cannot be rotated.", messages.ERROR)
            return HttpResponseRedirect(change_url)
        form = RotateForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            overlap = timedelta(seconds=form.cleaned_data["overlap"])
            new_token, raw = gateway_token_rotate(
                actor=actor_from_request(request), token=token, overlap=overlap
            )
            self.log_change(request, token, f"Rotated: replaced by {new_token.prefix}.")
            self.log_addition(request, new_token, f"Issued to replace {token.prefix}.")
            if token.revoked_at is not None:
                note = f"The old token {token.prefix}… is revoked."
            else:
                retire_at = f"{token.expires_at:%Y-%m-%d %H:%M} UTC"
                note = f"The old token {token.prefix}… stops working at {retire_at}."
            return self.redirect_to_issued(request, new_token, raw, note=note)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Rotate {token}",
            "object": token,
            "form": form,
            "text": "A new token is issued for the same gateway and shown once. Configure the "
            "gateway with it; the old token keeps working for the time you choose.",
            "button": "Issue replacement",
            "cancel_url": change_url,
        }
        return TemplateResponse(request, "admin/gateways/confirm.html", context)


@admin.register(ApiKey)
class ApiKeyAdmin(CredentialAdmin):
    owner_field = "user"
    list_display = [
        "prefix",
        "name",
        "user",
        "state",
        "created_at",
        "created_by",
        "last_used_at",
        "last_used_ip",
        "expires_at",
        "revoked_at",
    ]
    list_filter = [CredentialStateFilter]
    list_select_related = ["user", "created_by"]
    search_fields = ["prefix", "name", "user__username"]
    raw_id_fields = ["user"]

    def issue(self, request, obj):
        return api_key_issue(
            actor=actor_from_request(request),
            user=obj.user,
            name=obj.name,
            expires_at=obj.expires_at,
        )
