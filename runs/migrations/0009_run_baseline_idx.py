from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("runs", "0008_logline_message_trgm")]

    operations = [
        migrations.AddIndex(
            model_name="run",
            index=models.Index(
                condition=models.Q(status="succeeded"),
                fields=["pipeline", "created_at", "id"],
                name="run_baseline_idx",
            ),
        ),
    ]
