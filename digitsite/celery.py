"""The Celery app, configured from Django's settings (the CELERY_* names)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "digitsite.settings")

app = Celery("worker")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Only the worker imports the tasks (and through them the model code); the web side
# queues them by name.
app.conf.include = ["worker.tasks"]
