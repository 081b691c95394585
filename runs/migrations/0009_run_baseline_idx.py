from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("runs", "0005_patch_receipt_created_idx")]

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
