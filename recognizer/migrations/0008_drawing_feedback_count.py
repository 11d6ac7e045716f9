# A person's feedback on a drawing is kept once (a later one replaces it) and counted.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("recognizer", "0007_model_version_checks"),
    ]

    operations = [
        migrations.AddField(
            model_name="drawing",
            name="feedback_count",
            field=models.PositiveIntegerField(
                default=0, help_text="how often the person gave feedback; the last one is kept"
            ),
        ),
    ]
