from django.contrib import admin
from django.templatetags.static import static
from django.urls import path
from django.views.generic import RedirectView

from recognizer import operations, views
from recognizer.api import api

urlpatterns = [
    path("", views.canvas, name="canvas"),
    path("api/", views.api_root),  # before Ninja's own root view, which only raises 404
    path("api/", api.urls),
    path("admin/", admin.site.urls),
    path("healthz", operations.healthz, name="healthz"),
    path("metrics", operations.metrics, name="metrics"),
    # Browsers ask for /favicon.ico on pages without an icon link (the admin's): the page's icon.
    # Not a permanent redirect, which browsers would keep even after the static file's URL changed.
    path("favicon.ico", RedirectView.as_view(url=static("recognizer/favicon.svg"))),
]

handler400 = "recognizer.views.bad_request"
handler404 = "recognizer.views.not_found"
handler500 = "recognizer.views.server_error"
