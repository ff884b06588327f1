from django.urls import path

from .webhooks import screening_webhook

urlpatterns = [
    path("", screening_webhook, name="screening-webhook"),
]
