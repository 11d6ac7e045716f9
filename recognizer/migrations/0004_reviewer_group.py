"""The "reviewer" group: staff in it may look at drawings and label them, nothing more."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

CODENAMES = ["view_drawing", "label_drawing"]


def create_reviewer_group(apps, schema_editor):
    # Permissions are normally made after all migrations ran; this one needs them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    group, _ = apps.get_model("auth", "Group").objects.get_or_create(name="reviewer")
    permissions = apps.get_model("auth", "Permission").objects.filter(
        content_type__app_label="recognizer", codename__in=CODENAMES
    )
    group.permissions.add(*permissions)


def remove_reviewer_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="reviewer").delete()


class Migration(migrations.Migration):
    dependencies = [("recognizer", "0003_model_versions_and_review"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(create_reviewer_group, remove_reviewer_group)]
