from django.contrib import admin
from django.urls import path

from recognizer import operations, views
from recognizer.api import api

urlpatterns = [
    path("", views.canvas, name="canvas"),
    path("api/", api.urls),
    path("admin/", admin.site.urls),
    path("healthz", operations.healthz, name="healthz"),
    path("metrics", operations.metrics, name="metrics"),
]

handler400 = "recognizer.views.bad_request"
handler404 = "recognizer.views.not_found"
handler500 = "recognizer.views.server_error"
