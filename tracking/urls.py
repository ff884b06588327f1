from django.urls import path

from tracking import views

urlpatterns = [
    path("t/<str:token>", views.tracking, name="tracking"),
    path("t/<str:token>/status.json", views.tracking_status, name="tracking-status"),
    path("t/<str:token>/photo", views.tracking_photo, name="tracking-photo"),
    path("t/<str:token>/tip", views.tracking_tip, name="tracking-tip"),
    path("t/<str:token>/rate", views.tracking_rate, name="tracking-rate"),
]
