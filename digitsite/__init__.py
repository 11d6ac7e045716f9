"""The Django project. The Celery app is loaded with it so that `shared_task` binds to it."""

from digitsite.celery import app as celery_app

__all__ = ("celery_app",)
