"""The driver sign-up funnel, mounted at /driver/join/ (namespace "onboarding")."""

from django.urls import path

from . import application_status
from . import onboarding as views

app_name = "onboarding"

urlpatterns = [
    path("", views.landing, name="landing"),
    path("start/", views.start, name="start"),
    path("profile/", views.profile, name="profile"),
    path("phone/", views.phone, name="phone"),
    path("vehicle/", views.vehicle, name="vehicle"),
    path("documents/", views.documents, name="documents"),
    path("age/", views.age, name="age"),
    path("background-check/", views.disclosure, name="disclosure"),
    path("background-check/authorize/", views.consent, name="consent"),
    path("review/", views.review, name="review"),
    path("status/", application_status.status, name="status"),
    path("status/dispute/", application_status.dispute, name="dispute"),
]
