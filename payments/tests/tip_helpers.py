"""A one-stop delivery with a tip, for the tips tests (payments/tests/test_tips.py) and the
browser test of the tracking page (tests/browser/test_tip_e2e.py)."""

from orders.batch_editing import batch_create, batch_publish
from orders.delivery import batch_check_in, batch_handoff
from orders.models import Batch, Order
from orders.tests.helpers import deliver, make_driver, make_trip
from orders.transitions import batch_set_status
from payments import tasks, tips
from payments.models import TipCharge


class Run:
    """A one-stop delivery with a tip, taken through the services stage by stage."""

    def __init__(self, zone, *, amount=650, card=None):
        self.trip = make_trip(zone, stops=1, until="received")
        self.order: Order = self.trip.orders[0]
        customer, method = card or ("", "")
        self.tip = tips.tip_intake(
            order=self.order, amount_cents=amount, stripe_customer=customer, stripe_payment_method=method
        )
        self.zone = zone
        self.batch: Batch | None = None
        self.driver = None

    def authorise(self):
        for charge in TipCharge.objects.filter(tip=self.tip, status=TipCharge.Status.PENDING):
            tasks.authorize_tip_charge(charge.pk)  # what the task queued on commit runs
        return self.refresh()

    def claim(self):
        self.batch = batch_create(store=self.trip.store, orders=[self.order])
        batch_publish(batch=self.batch)
        self.driver = make_driver(home_zone=self.zone)
        batch_set_status(batch=self.batch, to="assigned", updates={"driver": self.driver})
        return self.refresh()

    def pick_up(self):
        batch_check_in(batch=self.batch, driver=self.driver, lat=self.batch.store.lat, lng=self.batch.store.lng)
        self.batch.refresh_from_db()
        batch_handoff(batch=self.batch, pickup_code=self.batch.pickup_code)
        return self.refresh()

    def deliver(self):
        deliver(self.trip.stop(0))
        return self.refresh()

    def refresh(self):
        self.order.refresh_from_db()
        self.tip.refresh_from_db()
        if self.batch:
            self.batch.refresh_from_db()
        return self
