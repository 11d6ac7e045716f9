"""The Celery side of digits: the Celery app, tasks, and the model code."""
