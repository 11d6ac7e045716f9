"""The Celery app, configured from Django's settings (the CELERY_* names), as in Celery's Django example.

`celery -A digitsite worker` finds it here. The web process uses it only to queue tasks by
name, so only a worker imports the task module (and through it the model code).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "digitsite.settings")

app = Celery("digitsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Named, not imported: a worker imports it when it starts; the web never does.
app.conf.include = ["worker.tasks"]
