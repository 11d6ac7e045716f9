# Workers predict with an export of the Keras model to LiteRT (issue #14): each version carries
# the .tflite file beside its .keras file. Versions registered before have no export, so a
# worker cannot load them: they start unchecked again, and `manage.py verify_models` exports
# and checks them (where TensorFlow is installed).
from django.db import migrations, models


def uncheck_versions_without_export(apps, schema_editor):
    apps.get_model("recognizer", "ModelVersion").objects.filter(verified_at__isnull=False).update(
        verified_at=None,
        verification={"error": "registered before runtime exports: run `manage.py verify_models` to export it"},
    )


class Migration(migrations.Migration):
    dependencies = [("recognizer", "0007_attempts_feedback_and_model_checks")]

    operations = [
        migrations.AddField(
            model_name="modelversion",
            name="runtime_artifact",
            field=models.BinaryField(blank=True, default=b"", help_text="the .tflite export workers load"),
        ),
        migrations.RunPython(uncheck_versions_without_export, migrations.RunPython.noop),
    ]
