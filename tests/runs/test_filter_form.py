"""The filter form's fields are built once and shared by every request's form."""

from django.http import QueryDict

from runs.filters import RunFilter
from runs.models import Run


def test_each_request_reads_its_own_values_and_errors_through_the_shared_fields():
    bad = RunFilter(QueryDict("status=nope&sort=createdAt"), queryset=Run.objects.none())
    good = RunFilter(QueryDict("status=failed&q=orders"), queryset=Run.objects.none())
    assert not bad.form.is_valid()
    assert good.form.is_valid(), good.form.errors
    assert set(bad.form.errors) == {"status"}
    assert good.form.cleaned_data["q"] == "orders"
    assert bad.form.cleaned_data["sort"] == "createdAt" and not good.form.cleaned_data["sort"]
    # Each form has fields of its own (a change to one is not another's), built from one set.
    assert bad.form.fields["status"] is not good.form.fields["status"]
    assert bad.form.fields["status"].widget is good.form.fields["status"].widget
