"""The driver app, mounted at /driver/ (spark/urls.py); the sign-up funnel is at /driver/join/
(driver_app/onboarding_urls.py). /sw.js and /manifest.webmanifest live at the site root
(driver_app/pwa_urls.py) so the service worker may control /driver/."""

from django.urls import path

from . import batch, cashout, earnings, home, offers, payout_setup, push, pwa, standing, support

app_name = "driver_app"

urlpatterns = [
    path("", home.home, name="home"),
    path("duty/", home.duty_partial, name="duty"),
    path("route/", home.route_partial, name="route"),
    path("slots/", home.slots_partial, name="slots"),
    path("feed/", home.feed_partial, name="feed"),
    path("offers/", offers.offers, name="offers"),
    path("offers/live/", offers.offers_live, name="offers-live"),
    path("offers/badge/", offers.offers_badge, name="offers-badge"),
    path("batch/", batch.batch, name="batch"),
    path("batch/status/", batch.batch_status, name="batch-status"),
    path("batch/stops/", batch.batch_stops, name="batch-stops"),
    path("standing/", standing.standing, name="standing"),
    path("help/", support.help_page, name="help"),
    path("earnings/", earnings.earnings_home, name="earnings"),
    path("earnings/batches/<int:batch_id>/", earnings.earnings_batch, name="earnings-batch"),
    path("earnings/statements/<str:week>/", earnings.earnings_statement, name="earnings-statement"),
    path("earnings/statements/<str:week>/csv/", earnings.earnings_statement_csv, name="earnings-statement-csv"),
    path("earnings/payouts/", earnings.earnings_payouts, name="earnings-payouts"),
    path("standing/log/", standing.dispatch_log, name="dispatch-log"),
    path("payouts/", payout_setup.payouts, name="payouts"),
    path("payouts/setup/", payout_setup.payouts_setup, name="payouts-setup"),
    path("payouts/cash-out/", cashout.cashout, name="cashout"),
    path("payouts/tax/", payout_setup.tax_details, name="tax-details"),
    path("payouts/1099-nec/<int:year>.csv", payout_setup.nec_1099, name="nec-1099"),
    path("push/subscribe/", push.push_subscribe, name="push-subscribe"),
    path("push/unsubscribe/", push.push_unsubscribe, name="push-unsubscribe"),
    path("offline/", pwa.offline, name="offline"),
]
