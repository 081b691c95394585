"""The one FilterSet of runs, used by ``GET /api/runs`` and by the Runs page.

Query parameters (the same on both): ``status`` (one, a comma list, or repeated),
``pipelineId``, ``gatewayId``, ``trigger``, ``dateRange=YYYY-MM-DD..YYYY-MM-DD`` (both days
inclusive; either end may be left open), ``from``/``to`` (a date or an ISO timestamp; a date
``to`` includes its whole day), ``window`` (``24h``, ``7d``, ``30d``), ``q`` (a run id,
with or without its ``run_`` prefix, a pipeline's name, or text in the error summary) and
``baseline=out`` (runs out of their pipeline's baseline), ``label=key:value`` (repeatable: every
pair must match). Each list filter has its negation: ``excludeStatus``, ``excludePipelineId``,
``excludeGatewayId``, ``excludeTrigger``, ``excludeLabel`` (each repeatable; a run matching any
value is left out), combinable with the positive ones. ``sort`` picks the order (``RUN_SORTS``),
which the keyset paginator reads from ``RunFilter.ordering``. Every value is checked by the form,
so a bad one is a 400 naming the parameter, never an empty page or a 500.
"""

import copy
from datetime import date, datetime, timedelta
from typing import Any

import django_filters
from django import forms
from django.db import connections
from django.db.models import (
    CharField,
    DurationField,
    ExpressionWrapper,
    F,
    Func,
    Q,
    QuerySet,
    Value,
)
from django.http import QueryDict
from django.utils import timezone

from common.api.pagination import CREATED_NEWEST_FIRST, CREATED_OLDEST_FIRST, Ordering
from common.labels import label_pair_parsed
from common.time import InstantOutOfRange, NaiveInstant, day_start, parse_aware_instant
from gateways.models import Gateway
from pipelines.models import Pipeline
from runs import stats
from runs.models import STATUS_ALIASES, Run, RunStatus, TriggerType

WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
WINDOW_LABELS = {"24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days"}
# The filters that bound the creation time; the others say which runs.
TIME_FILTERS = ("window", "dateRange", "from", "to")

DURATION = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
# The orders of the runs list. Keys that may be NULL (not started, not finished, nothing
# reported) put those runs last in either direction. Each is index-backed on PostgreSQL
# (runs migration 0011): the duration through an expression index on this same expression.
RUN_SORTS: dict[str, Ordering] = {
    ordering.name: ordering
    for ordering in [
        CREATED_NEWEST_FIRST,
        CREATED_OLDEST_FIRST,
        Ordering("-startedAt", F("started_at"), nullable=True),
        Ordering("-durationSeconds", DURATION, nullable=True, kind="duration"),
        Ordering("durationSeconds", DURATION, descending=False, nullable=True, kind="duration"),
        Ordering("-rowsLoaded", F("rows_loaded"), nullable=True, kind="int"),
        Ordering("-bytesLoaded", F("bytes_loaded"), nullable=True, kind="int"),
    ]
}
DEFAULT_SORT = CREATED_NEWEST_FIRST.name


class StatusListField(forms.Field):
    @staticmethod
    def items(value) -> list[str]:
        """The statuses a raw value names, as written: one, a comma list, or repeated."""
        raw = value if isinstance(value, list) else [value] if value else []
        return [item.strip() for chunk in raw for item in str(chunk).split(",") if item.strip()]

    def to_python(self, value):
        statuses: list[str] = []
        for item in self.items(value):
            item = STATUS_ALIASES.get(item, item)
            if item not in RunStatus.values:
                raise forms.ValidationError(
                    f"Unknown status {item!r}; use one of {', '.join(RunStatus.values)}."
                )
            if item not in statuses:
                statuses.append(item)
        return statuses


class StatusWidget(forms.CheckboxSelectMultiple):
    def value_from_datadict(self, data, files, name):
        return data.getlist(name) if hasattr(data, "getlist") else data.get(name)


class StatusListFilter(django_filters.Filter):
    field_class = StatusListField

    def filter(self, qs, value):
        if not value:
            return qs
        return qs.exclude(status__in=value) if self.exclude else qs.filter(status__in=value)


class LabelListField(forms.Field):
    """``key:value`` pairs, from a repeated parameter (or a comma-free single one)."""

    widget = StatusWidget

    def to_python(self, value):
        raw = value if isinstance(value, list) else [value] if value else []
        pairs: list[tuple[str, str]] = []
        for item in raw:
            if item in ("", None):
                continue
            try:
                pair = label_pair_parsed(str(item))
            except ValueError as exc:
                raise forms.ValidationError(str(exc)) from None
            if pair not in pairs:
                pairs.append(pair)
        if len(pairs) > 20:
            raise forms.ValidationError("At most 20 label filters.")
        return pairs


def label_value(key: str) -> Func:
    """The value of label ``key`` as text, outside PostgreSQL: ``json_extract`` with the key
    quoted, so that a key of digits is not read as an array index and ``__`` in a key is not read
    as an ORM lookup (keys are ``[a-z0-9_.-]``, nothing to escape)."""
    return Func(F("labels"), Value(f'$."{key}"'), function="JSON_EXTRACT", output_field=CharField())


class LabelListFilter(django_filters.Filter):
    field_class = LabelListField

    def filter(self, qs, value):
        if not value:
            return qs
        if connections[qs.db].vendor == "postgresql":
            if self.exclude:
                for key, item in value:
                    qs = qs.exclude(labels__contains={key: item})
                return qs
            keys = [key for key, _ in value]
            if len(set(keys)) == len(keys):
                # One containment test for every pair: one GIN probe (``run_labels_gin``).
                return qs.filter(labels__contains=dict(value))
            for key, item in value:
                qs = qs.filter(labels__contains={key: item})
            return qs
        prefix = "label_out" if self.exclude else "label_in"
        for index, (key, item) in enumerate(value):
            name = f"{prefix}_{index}"
            qs = qs.alias(**{name: label_value(key)})
            if self.exclude:
                # A missing key reads as NULL, and NOT (NULL = v) is not true.
                qs = qs.filter(Q(**{f"{name}__isnull": True}) | ~Q(**{name: item}))
            else:
                qs = qs.filter(**{name: item})
        return qs


class ExcludeModelsFilter(django_filters.ModelMultipleChoiceFilter):
    """Leaves out rows pointing at any of the chosen objects (``field__in``, one condition); a
    row pointing at none (a run without a gateway) stays."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("exclude", True)
        kwargs.setdefault("distinct", False)
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        # Nothing chosen is ``queryset.none()``: its truth would compile a query to find out.
        if value is None or (isinstance(value, QuerySet) and value.query.is_empty()):
            return qs
        chosen = list(value)
        return qs.exclude(**{f"{self.field_name}__in": chosen}) if chosen else qs


class SortField(forms.Field):
    def to_python(self, value):
        value = "" if value is None else str(value).strip()
        if value and value not in RUN_SORTS:
            raise forms.ValidationError(
                f"Unknown sort {value[:40]!r}; use one of {', '.join(RUN_SORTS)}."
            )
        return value


class SortFilter(django_filters.Filter):
    """Read by the paginator (``RunFilter.ordering``), not applied to the queryset here."""

    field_class = SortField

    def filter(self, qs, value):
        return qs


def _text(value, *, limit: int = 64) -> str:
    value = "" if value is None else str(value).strip()
    if len(value) > limit:
        raise forms.ValidationError(f"Too long (at most {limit} characters).")
    return value


class InstantField(forms.Field):
    """A date or an aware ISO 8601 timestamp, as a UTC instant checked to be in range (years
    1-9999 in UTC) before it reaches a query. A date as an upper bound means the day's end."""

    def __init__(self, *, end_of_day: bool = False, **kwargs):
        self.end_of_day = end_of_day
        super().__init__(**kwargs)

    def to_python(self, value):
        value = _text(value)
        if not value:
            return None
        try:
            if len(value) == 10:
                return day_start(date.fromisoformat(value), days_later=int(self.end_of_day))
            return parse_aware_instant(value, from_query_string=True)
        except (InstantOutOfRange, NaiveInstant) as exc:
            raise forms.ValidationError(str(exc)) from None
        except ValueError:
            raise forms.ValidationError(
                "Use a date (YYYY-MM-DD) or an ISO 8601 timestamp with a timezone."
            ) from None


class InstantFilter(django_filters.Filter):
    field_class = InstantField


class DateRangeField(forms.Field):
    def to_python(self, value):
        value = _text(value)
        if not value:
            return None
        start, sep, end = value.partition("..")
        if not sep or not (start or end):
            raise forms.ValidationError("Use YYYY-MM-DD..YYYY-MM-DD (either end may be open).")
        try:
            lower = date.fromisoformat(start) if start else None
            upper = date.fromisoformat(end) if end else None
        except ValueError:
            raise forms.ValidationError("Dates must be valid YYYY-MM-DD dates.") from None
        if lower and upper and lower > upper:
            raise forms.ValidationError("The start date is after the end date.")
        try:
            return (
                day_start(lower) if lower else None,
                day_start(upper, days_later=1) if upper else None,
            )
        except InstantOutOfRange as exc:
            raise forms.ValidationError(str(exc)) from None


class DateRangeFilter(django_filters.Filter):
    field_class = DateRangeField

    def filter(self, qs, value):
        if not value:
            return qs
        lower, upper = value
        if lower:
            qs = qs.filter(created_at__gte=lower)
        if upper:
            qs = qs.filter(created_at__lt=upper)
        return qs


class SharedFields(dict):
    """A form class's ``base_fields`` whose deep copy (every ``Form`` makes one per instance)
    copies each field but not its widget, choices or queryset: the filter fields are never
    changed after they are built, and deep-copying ~16 of them was most of a filter form's cost."""

    def __deepcopy__(self, memo):
        return {name: copy.copy(field) for name, field in self.items()}


class RunFilterForm(forms.Form):
    def clean(self):
        data = super().clean()
        lower, upper = data.get("from"), data.get("to")
        if lower and upper and lower > upper:
            self.add_error("from", "'from' is after 'to'.")
        return data


class RunFilter(django_filters.FilterSet):
    status = StatusListFilter(widget=StatusWidget(choices=RunStatus.choices))
    pipelineId = django_filters.ModelChoiceFilter(
        field_name="pipeline", queryset=Pipeline.objects.all(), to_field_name="public_id"
    )
    gatewayId = django_filters.ModelChoiceFilter(
        field_name="gateway", queryset=Gateway.objects.all(), to_field_name="public_id"
    )
    trigger = django_filters.ChoiceFilter(field_name="trigger_type", choices=TriggerType.choices)
    dateRange = DateRangeFilter()
    locals()["from"] = InstantFilter(field_name="created_at", lookup_expr="gte")
    to = InstantFilter(field_name="created_at", lookup_expr="lt", end_of_day=True)
    window = django_filters.ChoiceFilter(
        method="filter_window", choices=[(key, WINDOW_LABELS[key]) for key in WINDOWS]
    )
    q = django_filters.CharFilter(method="filter_search", max_length=200)
    baseline = django_filters.ChoiceFilter(
        method="filter_baseline", choices=[("out", "Out of baseline")]
    )
    label = LabelListFilter()
    excludeStatus = StatusListFilter(widget=StatusWidget(choices=RunStatus.choices), exclude=True)
    excludePipelineId = ExcludeModelsFilter(
        field_name="pipeline", queryset=Pipeline.objects.all(), to_field_name="public_id"
    )
    excludeGatewayId = ExcludeModelsFilter(
        field_name="gateway", queryset=Gateway.objects.all(), to_field_name="public_id"
    )
    excludeTrigger = django_filters.MultipleChoiceFilter(
        field_name="trigger_type", choices=TriggerType.choices, exclude=True, distinct=False
    )
    excludeLabel = LabelListFilter(exclude=True)
    sort = SortFilter()

    class Meta:
        model = Run
        fields: list[str] = []
        form = RunFilterForm

    def __init__(self, data=None, queryset=None, *, request=None, prefix=None):
        # As django-filter's, but for one step: it deep-copies every declared filter per
        # instance (their querysets and choices with them), and builds a new form class from
        # them (``get_form_class``); neither changes between requests, and the two were most of
        # the cost of reading a request's filters. Each instance gets shallow copies of its own
        # (a filter is bound to its FilterSet), and the form class is built once.
        if queryset is None:
            queryset = Run.objects.all()
        self.is_bound = data is not None
        self.data = data or QueryDict()
        self.queryset = queryset
        self.request = request
        self.form_prefix = prefix
        self.filters = {name: copy.copy(declared) for name, declared in self.base_filters.items()}
        for declared in self.filters.values():
            declared.model = queryset.model
            declared.parent = self
            if declared.method is not None:
                declared.method = declared.method  # its ``filter`` calls the copy, not the original

    def get_form_class(self):
        form_class = type(self).__dict__.get("_built_form_class")
        if form_class is None:
            form_class = super().get_form_class()
            form_class.base_fields = SharedFields(form_class.base_fields)
            type(self)._built_form_class = form_class
        return form_class

    @property
    def ordering(self) -> Ordering:
        """The order ``sort`` chose (the default when absent or when the form is invalid)."""
        cleaned = getattr(self.form, "cleaned_data", None) or {}
        return RUN_SORTS[cleaned.get("sort") or DEFAULT_SORT]

    def time_bounds(self, now: datetime) -> tuple[datetime | None, datetime]:
        """The creation-time window the filters chose: the latest lower bound (None when no
        filter sets one) and the earliest upper bound (``now`` at the latest)."""
        cleaned = self.form.cleaned_data
        lowers: list[datetime] = []
        uppers: list[datetime] = [now]
        if cleaned.get("window"):
            lowers.append(now - WINDOWS[cleaned["window"]])
        if cleaned.get("dateRange"):
            lower, upper = cleaned["dateRange"]
            lowers += [lower] if lower else []
            uppers += [upper] if upper else []
        if cleaned.get("from"):
            lowers.append(cleaned["from"])
        if cleaned.get("to"):
            uppers.append(cleaned["to"])
        return (max(lowers) if lowers else None), min(uppers)

    def without_time(self, queryset: QuerySet[Run]) -> QuerySet[Run]:
        """``queryset`` under the same filters minus the time bounds, from the cleaned values."""
        for name, value in self.form.cleaned_data.items():
            if name not in TIME_FILTERS and value not in (None, "", []):
                queryset = self.filters[name].filter(queryset, value)
        return queryset

    def filter_window(self, qs: QuerySet[Run], name: str, value: str) -> QuerySet[Run]:
        return qs.filter(created_at__gte=timezone.now() - WINDOWS[value])

    def filter_search(self, qs: QuerySet[Run], name: str, value: str) -> QuerySet[Run]:
        value = value.strip()
        if not value:
            return qs
        run_id = value if value.startswith("run_") else f"run_{value}"
        # Pipelines are few: the matching ones are looked up first, so the runs are read through
        # the (pipeline, created_at, id) index rather than a join per run.
        pipelines = Pipeline.objects.filter(name__icontains=value).values("pk")
        return qs.filter(
            Q(public_id__startswith=run_id.lower())
            | Q(pipeline__in=pipelines)
            | Q(error_summary__icontains=value)
        )

    def filter_baseline(self, qs: QuerySet[Run], name: str, value: str) -> QuerySet[Run]:
        if value != "out":
            return qs
        # Computed once per request, however many querysets (page, dashboard) apply it.
        if not hasattr(self, "_baseline_condition"):
            self._baseline_condition = stats.out_of_baseline_q()
        return stats.out_of_baseline(qs, self._baseline_condition)


def run_filter_checked(
    data: Any, *, queryset: QuerySet[Run], errors: dict[str, list[str]]
) -> RunFilter:
    """The run filters of a request's query, their refusals added to ``errors`` by parameter
    (a refusal of the whole form as ``query``), so a caller can report every bad parameter of
    a request at once."""
    filterset = RunFilter(data=data, queryset=queryset)
    if not filterset.is_valid():
        for name, messages in filterset.errors.items():
            errors[name if name != "__all__" else "query"] = list(messages)
    return filterset
