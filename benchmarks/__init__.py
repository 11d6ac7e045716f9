"""Tools that print figures (latency, load, inference, the canvas suite, retraining's effect).

They read the project's settings, as every process of the service does.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "digitsite.settings")
