# Defences against hostile input and bad days (issue #13), in one step:
# - a drawing counts the times a worker took it; one taken MAX_ATTEMPTS times ends failed;
# - a person's feedback on a drawing is kept once (a later one replaces it) and counted;
# - a model version is checked (loaded back and made to predict) before it may be activated,
#   and who activated it is recorded. Existing versions start unchecked: `manage.py verify_models`.
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("recognizer", "0006_review_queue_by_label"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="drawing",
            name="attempts",
            field=models.PositiveSmallIntegerField(
                default=0, help_text="how many times a worker took it; past MAX_ATTEMPTS it ends failed"
            ),
        ),
        migrations.AddField(
            model_name="drawing",
            name="feedback_count",
            field=models.PositiveIntegerField(
                default=0, help_text="how often the person gave feedback; the last one is kept"
            ),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="activated_by",
            field=models.ForeignKey(
                blank=True,
                help_text="who last activated it (empty: a command, e.g. manage.py retrain)",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="verified_at",
            field=models.DateTimeField(
                blank=True,
                help_text="when its stored file was loaded and predicted fixed inputs; empty: never, or it failed",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="verification",
            field=models.JSONField(blank=True, default=dict, help_text="what that check saw, or why it failed"),
        ),
    ]
