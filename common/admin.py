"""Admin for the audit trail (read-only, filtered by the known actions) and people's roles."""

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.utils.html import format_html

from common.audit import AuditAction
from common.models import AuditEvent
from common.roles import Role


class AuditActionFilter(admin.SimpleListFilter):
    """Choices from the known actions, not a DISTINCT over a table that only grows."""

    title = "action"
    parameter_name = "action"

    def lookups(self, request, model_admin):
        actions = sorted(
            value
            for name, value in vars(AuditAction).items()
            if name.isupper() and isinstance(value, str)
        )
        return [(action, action) for action in actions]

    def queryset(self, request, queryset):
        return queryset.filter(action=self.value()) if self.value() else queryset


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "actor_label",
        "action",
        "source",
        "target_type",
        "target_link",
        "ip",
    ]
    list_filter = [AuditActionFilter]
    search_fields = ["=target_id", "=actor_label"]
    search_help_text = "A target's id (run_…, a token's number) or an actor's exact name."
    show_full_result_count = False
    list_per_page = 100

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="target")
    def target_link(self, obj: AuditEvent) -> Any:
        return format_html("{} <small>{}</small>", obj.target_repr, obj.target_id)


class RoleUserAdmin(UserAdmin):
    """Django's user admin, with each person's roles (the viewer/runner/operator groups) in the
    list; its "groups" filter filters by role."""

    list_display = ("username", "email", "first_name", "last_name", "is_staff", "roles")

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description="roles")
    def roles(self, user) -> str:
        names = sorted(group.name for group in user.groups.all() if group.name in set(Role))
        return ", ".join(names) or ("all" if user.is_superuser else "none")


admin.site.unregister(User)
admin.site.register(User, RoleUserAdmin)
