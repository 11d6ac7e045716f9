from django.contrib import admin
from django.urls import path

from recognizer import views
from recognizer.api import api

urlpatterns = [
    path("", views.canvas, name="canvas"),
    path("api/", api.urls),
    path("admin/", admin.site.urls),
]

handler404 = "recognizer.views.not_found"
handler500 = "recognizer.views.server_error"
