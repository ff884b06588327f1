from django.urls import path

from . import autobatch, batches, queue, store_desk, store_setup

app_name = "dashboard"

urlpatterns = [
    path("", queue.dashboard_home, name="home"),
    path("s/<int:store_id>/", queue.queue, name="queue"),
    path("s/<int:store_id>/batches/", batches.batches, name="batches"),
    path("s/<int:store_id>/batches/new/", batches.batch_new, name="batch_new"),
    path("s/<int:store_id>/batches/<int:batch_id>/", batches.batch_detail, name="batch"),
    path("s/<int:store_id>/batches/<int:batch_id>/add/", batches.batch_add, name="batch_add"),
    path("s/<int:store_id>/batches/<int:batch_id>/reorder/", batches.batch_reorder, name="batch_reorder"),
    path(
        "s/<int:store_id>/batches/<int:batch_id>/stops/<int:stop_id>/remove/", batches.batch_remove, name="batch_remove"
    ),
    path(
        "s/<int:store_id>/batches/<int:batch_id>/stops/<int:stop_id>/<direction>/",
        batches.batch_move,
        name="batch_move",
    ),
    path("s/<int:store_id>/batches/<int:batch_id>/publish/", batches.batch_publish, name="batch_publish"),
    path("s/<int:store_id>/batches/<int:batch_id>/ready-at/", batches.batch_ready_at, name="batch_ready_at"),
    path("s/<int:store_id>/batches/<int:batch_id>/unpublish/", batches.batch_unpublish, name="batch_unpublish"),
    path("s/<int:store_id>/batches/<int:batch_id>/discard/", batches.batch_discard, name="batch_discard"),
    path("s/<int:store_id>/auto/", autobatch.autobatch, name="autobatch"),
    path("s/<int:store_id>/auto/<int:run_id>/", autobatch.autobatch_run, name="autobatch_run"),
    path("s/<int:store_id>/auto/<int:run_id>/publish/", autobatch.autobatch_publish_all, name="autobatch_publish"),
    path("s/<int:store_id>/handoff/", store_desk.handoff, name="handoff"),
    path("s/<int:store_id>/handoff/<int:batch_id>/", store_desk.handoff_confirm, name="handoff_confirm"),
    path("s/<int:store_id>/handoff/<int:batch_id>/here/", store_desk.batch_confirm_here, name="batch_confirm_here"),
    path("s/<int:store_id>/slot-seats/<int:claim_id>/here/", store_desk.slot_confirm_here, name="slot_confirm_here"),
    path("s/<int:store_id>/returns/", store_desk.returns, name="returns"),
    path("s/<int:store_id>/returns/<int:order_id>/", store_desk.return_check_in, name="return_check_in"),
    path("s/<int:store_id>/slots/", store_setup.slots, name="slots"),
    path("s/<int:store_id>/team/", store_setup.team, name="team"),
]
