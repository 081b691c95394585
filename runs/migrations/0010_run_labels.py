from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("runs", "0009_run_baseline_idx")]

    operations = [
        migrations.AddField(
            model_name="run",
            name="labels",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
