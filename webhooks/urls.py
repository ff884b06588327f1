from django.urls import path

from . import screening

urlpatterns = [
    path("screening/", screening.screening_webhook, name="screening-webhook"),
]
