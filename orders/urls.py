from django.urls import path

from . import views

urlpatterns = [
    path("t/<str:token>", views.tracking, name="tracking"),
]
