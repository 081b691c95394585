"""Default labels of a pipeline, edited in admin, checked by the same rules as the API's."""

import pytest

from pipelines.models import Pipeline
from tests.factories import PipelineFactory

pytestmark = pytest.mark.django_db


def form(pipeline: Pipeline, labels: str) -> dict:
    return {"name": pipeline.name, "description": "", "default_gateway": "", "labels": labels}


def test_admin_saves_default_labels(admin_client):
    pipeline = PipelineFactory(name="ledger", default_gateway=None)

    response = admin_client.post(
        f"/admin/pipelines/pipeline/{pipeline.pk}/change/", form(pipeline, '{"team": "finance"}')
    )

    assert response.status_code == 302, response.content[:2000]
    pipeline.refresh_from_db()
    assert pipeline.labels == {"team": "finance"}


@pytest.mark.parametrize("labels", ['{"Team": "finance"}', '{"team": 1}', '["team"]'])
def test_admin_refuses_bad_labels_and_keeps_the_old_ones(admin_client, labels):
    pipeline = PipelineFactory(name="ledger", default_gateway=None, labels={"team": "ops"})

    response = admin_client.post(
        f"/admin/pipelines/pipeline/{pipeline.pk}/change/", form(pipeline, labels)
    )

    assert response.status_code == 200
    assert b"errorlist" in response.content
    pipeline.refresh_from_db()
    assert pipeline.labels == {"team": "ops"}
