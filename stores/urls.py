from django.urls import path

from . import views

app_name = "dashboard"

urlpatterns = [
    path("", views.dashboard_home, name="home"),
    path("s/<int:store_id>/", views.queue, name="queue"),
    path("s/<int:store_id>/batches/", views.batches, name="batches"),
    path("s/<int:store_id>/batches/new/", views.batch_new, name="batch_new"),
    path("s/<int:store_id>/batches/<int:batch_id>/", views.batch_detail, name="batch"),
    path("s/<int:store_id>/batches/<int:batch_id>/add/", views.batch_add, name="batch_add"),
    path("s/<int:store_id>/batches/<int:batch_id>/reorder/", views.batch_reorder, name="batch_reorder"),
    path(
        "s/<int:store_id>/batches/<int:batch_id>/stops/<int:stop_id>/remove/", views.batch_remove, name="batch_remove"
    ),
    path(
        "s/<int:store_id>/batches/<int:batch_id>/stops/<int:stop_id>/<direction>/", views.batch_move, name="batch_move"
    ),
    path("s/<int:store_id>/batches/<int:batch_id>/publish/", views.batch_publish, name="batch_publish"),
    path("s/<int:store_id>/batches/<int:batch_id>/ready-at/", views.batch_ready_at, name="batch_ready_at"),
    path("s/<int:store_id>/batches/<int:batch_id>/unpublish/", views.batch_unpublish, name="batch_unpublish"),
    path("s/<int:store_id>/batches/<int:batch_id>/discard/", views.batch_discard, name="batch_discard"),
    path("s/<int:store_id>/auto/", views.autobatch, name="autobatch"),
    path("s/<int:store_id>/auto/<int:run_id>/", views.autobatch_run, name="autobatch_run"),
    path("s/<int:store_id>/auto/<int:run_id>/publish/", views.autobatch_publish_all, name="autobatch_publish"),
    path("s/<int:store_id>/handoff/", views.handoff, name="handoff"),
    path("s/<int:store_id>/handoff/<int:batch_id>/", views.handoff_confirm, name="handoff_confirm"),
    path("s/<int:store_id>/returns/", views.returns, name="returns"),
    path("s/<int:store_id>/returns/<int:order_id>/", views.return_check_in, name="return_check_in"),
    path("s/<int:store_id>/slots/", views.slots, name="slots"),
    path("s/<int:store_id>/team/", views.team, name="team"),
]
