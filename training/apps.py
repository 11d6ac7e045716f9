from django.apps import AppConfig


class TrainingConfig(AppConfig):
    """Installed for its management commands (retrain, export_drawings); it has no models."""

    name = "training"
    verbose_name = "Training"
