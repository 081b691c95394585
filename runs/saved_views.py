"""Saved views of the Runs page: a name plus the page's query string (filters, exclusions, sort,
columns), personal or shared with everyone, and a few built-in ones.

The query is checked by the one ``RunFilter`` (every parameter it knows, with its own refusals)
and stored normalised (``normalise_query``), so "is the page showing this view, or a modified
one?" is a comparison of two normalised strings. Built-in views are code, not rows: their query
may be computed when they are opened ("queued for more than 15 minutes" is ``to=`` now-15min).
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import QueryDict
from django.utils import timezone
from django.utils.http import urlencode

from common.actors import Actor
from common.audit import AuditAction, audit_record
from common.errors import InvalidInput, NotFound, PermissionDenied
from common.ids import is_plausible_public_id
from common.preferences import user_last_view, user_last_view_set
from common.roles import Perm
from common.time import iso
from runs.filters import RunFilter, run_filter_checked
from runs.models import Run, SavedView

# The Runs table's columns, as ``columns=`` names them.
COLUMNS = (
    "status",
    "run",
    "pipeline",
    "gateway",
    "trigger",
    "started",
    "duration",
    "rows",
    "bytes",
    "progress",
    "spark",
)
# Page parameters a view keeps beside the filters. ``sort`` is checked by RunFilter when it
# knows it; ``columns`` here.
PAGE_PARAMS = ("sort", "columns")
# Page state that is never part of a view: where the page is, not what it shows.
STATE_PARAMS = ("cursor", "top", "v", "view")
MAX_NAME = 100
MAX_QUERY = 2000
STUCK_AFTER = timedelta(minutes=15)


def view_params() -> tuple[str, ...]:
    """Every parameter a view may hold, in the order a normalised query writes them: the
    filters as RunFilter declares them (whatever it grows), then the page's own."""
    names = list(RunFilter.base_filters)
    return (*names, *(name for name in PAGE_PARAMS if name not in names))


def _parse(query: str) -> QueryDict:
    return QueryDict(query.strip().removeprefix("?"))


def normalise_query(query: str, *, strict: bool = True) -> str:
    """``query`` in the one order every view is stored in, blanks and page state dropped.
    ``strict``: refuse (InvalidInput naming ``query.<param>``) an unknown parameter or a value
    RunFilter refuses; otherwise leave unknown ones out (for comparing the page's own URL)."""
    if len(query) > MAX_QUERY:
        raise InvalidInput(errors={"query": [f"At most {MAX_QUERY} characters."]})
    params = _parse(query)
    errors: dict[str, list[str]] = {}
    known = view_params()
    if strict:
        for name in params:
            if name not in known and name not in STATE_PARAMS:
                errors[f"query.{name}"] = [f"Unknown parameter; a view holds {', '.join(known)}."]
        for column in _columns(params):
            if column not in COLUMNS:
                errors["query.columns"] = [f"Unknown column {column!r}; use {', '.join(COLUMNS)}."]
        checked: dict[str, list[str]] = {}
        run_filter_checked(params, queryset=Run.objects.none(), errors=checked)
        errors.update({f"query.{name}": reasons for name, reasons in checked.items()})
        if errors:
            raise InvalidInput(errors=errors)
    pairs = [
        (name, value) for name in known for value in params.getlist(name) if value.strip() != ""
    ]
    return urlencode(pairs)


def _columns(params: QueryDict) -> list[str]:
    return [
        item.strip()
        for value in params.getlist("columns")
        for item in value.split(",")
        if item.strip()
    ]


def shown_columns(params: QueryDict) -> set[str]:
    """The table columns a page query shows: those ``columns=`` names (a comma list or
    repeated), every one when it names none it knows."""
    chosen = {name for name in _columns(params) if name in COLUMNS}
    return chosen or set(COLUMNS)


# Built-in views


@dataclass(frozen=True)
class BuiltinView:
    public_id: str
    name: str
    query_at: Callable[[datetime], str]
    # Parameters whose value is computed at open time: a page differing only there is the view.
    computed: tuple[str, ...] = ()

    def query(self, now: datetime | None = None) -> str:
        return self.query_at(now or timezone.now())


BUILTIN_VIEWS = (
    BuiltinView(
        "view_failed_24h", "Failed in the last 24 h", lambda now: "status=failed&window=24h"
    ),
    BuiltinView("view_running_now", "Running now", lambda now: "status=running"),
    BuiltinView(
        "view_stuck_queued",
        "Stuck: queued for more than 15 min",
        lambda now: urlencode({"status": "queued", "to": iso(now - STUCK_AFTER)}),
        computed=("to",),
    ),
)
BUILTIN_BY_ID = {view.public_id: view for view in BUILTIN_VIEWS}


# Reads


def saved_views_for(*, user: Any) -> QuerySet[SavedView]:
    """The person's own views and everyone's shared ones, by name."""
    return (
        SavedView.objects.filter(Q(owner_id=user.pk) | Q(shared=True))
        .select_related("owner")
        .order_by("name", "id")
    )


def saved_view_get(*, user: Any, public_id: str) -> SavedView | None:
    """A view the person may open: their own or a shared one. Someone else's personal view is
    indistinguishable from one that does not exist."""
    if not is_plausible_public_id(public_id):
        return None
    return saved_views_for(user=user).filter(public_id=public_id).first()


@dataclass(frozen=True)
class OpenedView:
    """A view as the page opens it: saved or built-in, with the query it stands for now."""

    public_id: str
    name: str
    query: str
    built_in: bool
    computed: tuple[str, ...] = ()
    saved: SavedView | None = None

    def matches(self, page_query: str) -> bool:
        """Whether the page's query is this view's (``computed`` parameters only need to be
        present: their values move with the clock)."""
        page = _parse(normalise_query(page_query, strict=False))
        mine = _parse(self.query)
        keys = set(page) | set(mine)
        return all(
            (name in page and name in mine)
            if name in self.computed
            else page.getlist(name) == mine.getlist(name)
            for name in keys
        )


def view_open(*, user: Any, public_id: str) -> OpenedView | None:
    builtin = BUILTIN_BY_ID.get(public_id)
    if builtin is not None:
        return OpenedView(
            builtin.public_id, builtin.name, builtin.query(), True, computed=builtin.computed
        )
    saved = saved_view_get(user=user, public_id=public_id)
    if saved is None:
        return None
    return OpenedView(saved.public_id, saved.name, saved.query, False, saved=saved)


def last_view_for(*, user: Any) -> OpenedView | None:
    last = user_last_view(user=user)
    return view_open(user=user, public_id=last) if last else None


# Writes


def _person(actor: Actor) -> Any:
    actor.require(Perm.VIEW_RUNS, doing="saving views")
    if actor.stored_user is None:
        raise PermissionDenied("Only a signed-in person has saved views.")
    return actor.stored_user


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(errors={"name": ["Give the view a name."]})
    name = name.strip()
    if len(name) > MAX_NAME:
        raise InvalidInput(errors={"name": [f"At most {MAX_NAME} characters."]})
    return name


def _check_share(actor: Actor, shared: bool) -> None:
    if shared:
        actor.require(Perm.SHARE_VIEWS, doing="sharing a view with everyone")


@transaction.atomic
def saved_view_create(*, actor: Actor, name: str, query: str, shared: bool = False) -> SavedView:
    owner = _person(actor)
    name = _check_name(name)
    query = normalise_query(query)
    _check_share(actor, shared)
    view = SavedView.objects.create(name=name, query=query, owner=owner, shared=shared)
    audit_record(
        actor=actor,
        action=AuditAction.SAVED_VIEW_CREATED,
        target=view,
        details={"name": name, "query": query, "shared": shared},
    )
    return view


def _owned(actor: Actor, view: SavedView, *, doing: str) -> None:
    if view.owner_id != getattr(actor.stored_user, "pk", None):
        raise PermissionDenied(f"Only the person who saved a view can {doing} it.")


@transaction.atomic
def saved_view_update(*, actor: Actor, view: SavedView, changes: dict[str, Any]) -> SavedView:
    """Rename, re-query, share or unshare the person's own view (``changes``: any of ``name``,
    ``query``, ``shared``)."""
    _person(actor)
    _owned(actor, view, doing="change")
    view = SavedView.objects.select_for_update().get(pk=view.pk)
    if view.shared and not ("shared" in changes and not changes["shared"]):
        # What everyone sees is changed only by someone who may share it (unsharing is free).
        actor.require(Perm.SHARE_VIEWS, doing="changing a view shared with everyone")
    if "name" in changes:
        view.name = _check_name(changes["name"])
    if "query" in changes:
        view.query = normalise_query(changes["query"])
    if "shared" in changes:
        _check_share(actor, changes["shared"])
        view.shared = changes["shared"]
    view.updated_at = timezone.now()
    view.save(update_fields=["name", "query", "shared", "updated_at"])
    audit_record(
        actor=actor,
        action=AuditAction.SAVED_VIEW_CHANGED,
        target=view,
        details={key: getattr(view, key) for key in ("name", "query", "shared") if key in changes},
    )
    return view


@transaction.atomic
def saved_view_delete(*, actor: Actor, view: SavedView) -> None:
    _person(actor)
    _owned(actor, view, doing="delete")
    audit_record(
        actor=actor, action=AuditAction.SAVED_VIEW_DELETED, target=view, details={"name": view.name}
    )
    view.delete()


def view_opened(*, actor: Actor, view_id: str) -> OpenedView | None:
    """The page opened a view: remember it as the person's last (``""``: they left views, and
    None is returned). Someone else's personal view is NotFound."""
    opened = None
    if view_id:
        opened = view_open(user=actor.user, public_id=view_id)
        if opened is None:
            raise NotFound("No saved view with this id.", field="view")
    user_last_view_set(actor=actor, view_id=view_id)
    return opened


def view_out(view: SavedView | OpenedView, *, user: Any) -> dict[str, Any]:
    if isinstance(view, OpenedView) and view.saved is not None:
        view = view.saved
    if isinstance(view, SavedView):
        return {
            "id": view.public_id,
            "name": view.name,
            "query": view.query,
            "url": f"/runs/?view={view.public_id}",
            "shared": view.shared,
            "builtIn": False,
            "owner": view.owner.get_username(),
            "mine": view.owner_id == user.pk,
            "createdAt": iso(view.created_at),
            "updatedAt": iso(view.updated_at),
        }
    return {
        "id": view.public_id,
        "name": view.name,
        "query": view.query,
        "url": f"/runs/?view={view.public_id}",
        "shared": True,
        "builtIn": True,
        "owner": None,
        "mine": False,
        "createdAt": None,
        "updatedAt": None,
    }


def builtin_views_opened() -> list[OpenedView]:
    now = timezone.now()
    return [
        OpenedView(view.public_id, view.name, view.query(now), True, computed=view.computed)
        for view in BUILTIN_VIEWS
    ]
