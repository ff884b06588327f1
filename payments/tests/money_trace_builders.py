"""A batch with money to trace (payments/tests/test_money_trace.py, tests/test_admin.py): made
through the services, from the tip's authorisation to settlement and an ops adjustment."""

from dispatch.tests.factories import OfferFactory
from orders.delivery import batch_complete
from payments.models import BatchPay, PayAdjustment
from payments.services import offer_pay_snapshot_create
from payments.settlement import pay_adjust, settle_batch
from payments.tests.factories import PayPolicyFactory
from payments.tests.tip_helpers import Run
from stores.tests.factories import UserFactory, ZoneFactory


def settled_batch(*, note: str = "waited at the store", tip_cents: int = 650):
    """A card tip's delivery: authorised, claimed with an accepted offer and its snapshot,
    picked up, delivered, completed and settled, then adjusted by ops (+$2.50, `note`).
    Returns (run, offer, batch pay)."""
    zone = ZoneFactory()
    PayPolicyFactory(zone=zone)
    run = Run(zone, amount=tip_cents, card=("cus_demo", "pm_demo")).authorise().claim()
    offer = OfferFactory(batch=run.batch, driver=run.driver, status="accepted")
    offer_pay_snapshot_create(offer=offer, incentive_cents=100)
    run.pick_up().deliver()
    batch_complete(batch=run.batch, driver=run.driver)
    pay = settle_batch(batch_id=run.batch.pk)
    assert isinstance(pay, BatchPay)
    pay_adjust(
        batch_pay=pay, amount_cents=250, reason=PayAdjustment.Reason.WAIT, note=note, actor=UserFactory(is_staff=True)
    )
    return run, offer, pay
