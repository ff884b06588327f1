"""payments.services.ledger_post: balanced, integer, non-zero, posted once per key."""

from decimal import Decimal

import pytest
from django.db import transaction
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.tests.factories import DriverFactory
from payments.models import Account, Entry, LedgerTransaction
from payments.selectors import driver_balance_cents, ledger_total_cents
from payments.services import UnbalancedTransaction, account_for_driver, ledger_post, system_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def expense(db):
    return system_account(kind=Account.Kind.PLATFORM_EXPENSE)


@pytest.fixture
def payable(driver):
    return account_for_driver(driver=driver)


def _counts() -> tuple[int, int]:
    return LedgerTransaction.objects.count(), Entry.objects.count()


def test_balanced_posting_is_written(expense, payable):
    # given nothing posted
    # when the platform owes a driver $12.34 for a batch
    posting = ledger_post(idempotency_key="batch-pay:1", kind="batch_pay", entries=[(expense, 1234), (payable, -1234)])
    # then one transaction with two entries that sum to zero
    assert posting.created is True
    assert sorted(posting.transaction.entries.values_list("amount_cents", flat=True)) == [-1234, 1234]
    assert ledger_total_cents() == 0


@pytest.mark.parametrize(
    "amounts",
    [
        pytest.param([100, -99], id="unbalanced"),
        pytest.param([100, 0, -100], id="zero-entry"),
        pytest.param([100], id="single-entry"),
        pytest.param([], id="no-entries"),
        pytest.param([1.5, -1.5], id="float"),
        pytest.param([Decimal("1"), Decimal("-1")], id="decimal"),
        pytest.param([True, -1], id="bool"),
        pytest.param(["100", "-100"], id="string"),
    ],
)
def test_bad_postings_are_refused_and_write_nothing(amounts, expense, payable, driver):
    accounts = [expense, payable, system_account(kind=Account.Kind.CASH)]
    before = _counts()
    with pytest.raises(UnbalancedTransaction):
        ledger_post(
            idempotency_key="bad:1",
            kind="test",
            entries=[(accounts[i % 3], amount) for i, amount in enumerate(amounts)],
        )
    assert _counts() == before
    assert not LedgerTransaction.objects.filter(idempotency_key="bad:1").exists()


def test_same_key_posts_once(expense, payable):
    first = ledger_post(idempotency_key="batch-pay:7", kind="batch_pay", entries=[(expense, 500), (payable, -500)])
    assert first.created
    before = _counts()
    # when settlement runs again (same key, even with different amounts)
    second = ledger_post(idempotency_key="batch-pay:7", kind="batch_pay", entries=[(expense, 900), (payable, -900)])
    # then the first posting stands and nothing new is written
    assert second.created is False
    assert second.transaction.pk == first.transaction.pk
    assert _counts() == before


def test_same_key_inside_an_outer_transaction(expense, payable):
    with transaction.atomic():
        ledger_post(idempotency_key="k", kind="t", entries=[(expense, 1), (payable, -1)])
        again = ledger_post(idempotency_key="k", kind="t", entries=[(expense, 1), (payable, -1)])
    assert again.created is False
    assert LedgerTransaction.objects.filter(idempotency_key="k").count() == 1


def test_driver_balance_is_the_sum_of_their_payable_entries(expense, driver):
    payable = account_for_driver(driver=driver)
    other = account_for_driver(driver=DriverFactory())
    cash = system_account(kind=Account.Kind.CASH)
    # payable entries are credits to the driver: negative amounts mean we owe them
    ledger_post(idempotency_key="pay:1", kind="batch_pay", entries=[(expense, 1500), (payable, -1500)])
    ledger_post(idempotency_key="pay:2", kind="batch_pay", entries=[(expense, 700), (payable, -700)])
    ledger_post(idempotency_key="pay:3", kind="batch_pay", entries=[(expense, 999), (other, -999)])
    ledger_post(idempotency_key="payout:1", kind="payout", entries=[(payable, 1000), (cash, -1000)])
    assert driver_balance_cents(driver=driver) == -1200
    assert driver_balance_cents(driver=other.driver) == -999
    assert driver_balance_cents(driver=DriverFactory()) == 0
    assert ledger_total_cents() == 0


def test_account_helpers_are_stable(driver):
    assert account_for_driver(driver=driver).pk == account_for_driver(driver=driver).pk
    assert system_account(kind=Account.Kind.CASH).pk == system_account(kind=Account.Kind.CASH).pk
    with pytest.raises(ValueError):
        system_account(kind=Account.Kind.DRIVER_PAYABLE)


# --- property: whatever is posted, the books balance --------------------------------

_amount = st.integers(min_value=1, max_value=10**9)


@st.composite
def _posting(draw):
    """One attempt: (key, [(account index, amount)], balanced?)."""
    key = f"k{draw(st.integers(min_value=0, max_value=5))}"  # small key space: repeats happen
    n = draw(st.integers(min_value=1, max_value=5))
    amounts = [draw(_amount) * draw(st.sampled_from([1, -1])) for _ in range(n)]
    balanced = draw(st.booleans())
    if balanced:
        if sum(amounts) == 0:  # the balancing entry may not be zero
            amounts.append(draw(_amount))
        amounts.append(-sum(amounts))
    elif sum(amounts) == 0:
        amounts.append(draw(_amount))
    indexes = [draw(st.integers(min_value=0, max_value=4)) for _ in amounts]
    return key, list(zip(indexes, amounts, strict=True)), balanced and len(amounts) >= 2


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(postings=st.lists(_posting(), min_size=1, max_size=12))
def test_ledger_always_balances(postings, driver, other_driver):
    accounts = [
        account_for_driver(driver=driver),
        account_for_driver(driver=other_driver),
        system_account(kind=Account.Kind.PLATFORM_EXPENSE),
        system_account(kind=Account.Kind.TIPS_HELD),
        system_account(kind=Account.Kind.CASH),
    ]
    # Each example runs in a transaction that is rolled back, so examples do not see each other.
    with transaction.atomic():
        posted: dict[str, list[int]] = {}
        for key, lines, valid in postings:
            entries = [(accounts[i], amount) for i, amount in lines]
            if not valid:
                before = _counts()
                with pytest.raises(UnbalancedTransaction):
                    ledger_post(idempotency_key=key, kind="prop", entries=entries)
                assert _counts() == before
                continue
            posting = ledger_post(idempotency_key=key, kind="prop", entries=entries)
            assert posting.created is (key not in posted)
            posted.setdefault(key, sorted(a for _, a in lines))
            # the first posting under a key stands, whatever later attempts carried
            assert sorted(posting.transaction.entries.values_list("amount_cents", flat=True)) == posted[key]
            assert ledger_total_cents() == 0
        assert ledger_total_cents() == 0
        assert LedgerTransaction.objects.count() == len(posted)
        unbalanced = Entry.objects.values("transaction").annotate(s=Sum("amount_cents")).exclude(s=0).count()
        assert unbalanced == 0
        transaction.set_rollback(True)
