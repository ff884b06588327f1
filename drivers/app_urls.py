"""The driver app, mounted at /driver/ (drivers/urls.py). /sw.js and /manifest.webmanifest live
at the site root (drivers/pwa_urls.py) so the service worker may control /driver/."""

from django.urls import path

from . import app_views as views

app_name = "driver_app"

urlpatterns = [
    path("", views.home, name="home"),
    path("duty/", views.duty_partial, name="duty"),
    path("route/", views.route_partial, name="route"),
    path("slots/", views.slots_partial, name="slots"),
    path("feed/", views.feed_partial, name="feed"),
    path("offers/", views.offers, name="offers"),
    path("offers/live/", views.offers_live, name="offers-live"),
    path("batch/", views.batch, name="batch"),
    path("batch/status/", views.batch_status, name="batch-status"),
    path("batch/stops/", views.batch_stops, name="batch-stops"),
    path("standing/", views.standing, name="standing"),
    path("standing/log/", views.dispatch_log, name="dispatch-log"),
    path("push/subscribe/", views.push_subscribe, name="push-subscribe"),
    path("push/unsubscribe/", views.push_unsubscribe, name="push-unsubscribe"),
    path("offline/", views.offline, name="offline"),
]
