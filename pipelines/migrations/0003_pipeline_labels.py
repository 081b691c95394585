from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("pipelines", "0002_pipeline_retention")]

    operations = [
        migrations.AddField(
            model_name="pipeline",
            name="labels",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text='Default labels of its runs, e.g. {"team": "finance"}; a run\'s own '
                "labels override them key by key.",
            ),
        ),
    ]
