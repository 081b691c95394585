from django.apps import AppConfig


class CommonConfig(AppConfig):
    """What every app uses: public ids, actors and the audit trail, domain errors, the API
    toolkit and the hot-path SQL helpers. It imports none of the other apps."""

    name = "common"
    default_auto_field = "django.db.models.BigAutoField"
