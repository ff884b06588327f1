from django.urls import path

from . import screening, stripe

urlpatterns = [
    path("screening/", screening.screening_webhook, name="screening-webhook"),
    path("stripe/", stripe.stripe_webhook, name="stripe-webhook"),
]
