"""ASGI entry point: HTTP to Django, websockets to Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "digitsite.settings")
# Build the HTTP app (which sets Django up) before importing anything that uses models.
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from digitsite.body_limit import BodySizeLimit  # noqa: E402
from recognizer.routing import origin_checked, websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Static files come from the apps' static folders, served asynchronously without a
        # collectstatic step; the page has a handful of small files.
        "http": BodySizeLimit(ASGIStaticFilesHandler(django_application), settings.DATA_UPLOAD_MAX_MEMORY_SIZE),
        "websocket": origin_checked(URLRouter(websocket_urlpatterns)),
    }
)
