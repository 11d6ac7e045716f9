# A drawing counts the times a worker took it; one taken MAX_ATTEMPTS times ends failed.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("recognizer", "0008_drawing_feedback_count"),
    ]

    operations = [
        migrations.AddField(
            model_name="drawing",
            name="attempts",
            field=models.PositiveSmallIntegerField(
                default=0, help_text="how many times a worker took it; past MAX_ATTEMPTS it ends failed"
            ),
        ),
    ]
