"""The earnings API (/api/v1/driver/earnings/...): the same facts as the screens, the driver's
own only, paginated, statements as JSON and CSV that add up, bad weeks a clear 400."""

import csv
import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from drivers.models import Driver
from drivers.tests.factories import DriverFactory
from payments.selectors import driver_balance_cents
from payments.tests.earnings_builders import PAID, adjust, ended_batch, payout, settle, tip_rows
from stores.tests.factories import StoreFactory, ZoneFactory

pytestmark = pytest.mark.django_db

API = "/api/v1/driver/earnings"


@pytest.fixture
def zone(db):
    return ZoneFactory(timezone="America/New_York")


@pytest.fixture
def driver(zone):
    return DriverFactory(home_zone=zone)


@pytest.fixture
def store(zone):
    return StoreFactory(zone=zone, name="Uptown")


def api_for(driver) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=driver.user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def test_balance_and_pending(driver, store):
    settled = ended_batch(driver, store=store, tips=(500, 300))
    pay = settle(settled)
    tips = tip_rows(settled, captured=1)
    waiting = ended_batch(driver, store=store, tips=(200,))
    payout(driver, 600, fee=50, kind="instant")

    body = api_for(driver).get(f"{API}/").json()
    assert body["balance_cents"] == driver_balance_cents(driver=driver) == pay.final_cents + 500 - 650
    assert body["earnings_cents"] == pay.final_cents - 650 and body["tips_cents"] == 500
    assert body["test_payments"] is True
    [pending_batch] = body["pending"]["batches"]
    assert pending_batch["batch_id"] == waiting.pk and pending_batch["guaranteed_cents"] == 1450
    [pending_tip] = body["pending"]["tips"]
    assert pending_tip == {
        "order_id": tips[1].order_id,
        "batch_id": settled.pk,
        "amount_cents": 300,
        "window_closes_at": pending_tip["window_closes_at"],
    }
    assert pending_tip["window_closes_at"] and body["pending"]["tips_cents"] == 300


def test_batches_are_paginated_with_the_same_facts_as_the_screen(driver, store):
    batches = [ended_batch(driver, store=store) for _ in range(3)]
    pay = settle(batches[0])
    adjust(pay, -75, reason="correction", note="Stop counted twice")
    tip_rows(batches[0], captured=2)
    client = api_for(driver)
    page = client.get(f"{API}/batches/?limit=2").json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]
    every = page["results"] + client.get(page["next"]).json()["results"]
    assert sorted(b["batch_id"] for b in every) == sorted(b.pk for b in batches)

    item = client.get(f"{API}/batches/{batches[0].pk}/").json()
    assert item["settled"] is True and item["store_name"] == "Uptown"
    assert item["offered"]["guaranteed_cents"] == 1450 and item["offered"]["tip_cents"] == 800
    paid = item["paid"]
    assert {k: paid[k] for k in PAID} == PAID
    assert paid["final_cents"] == pay.final_cents and paid["guarantee_top_up_cents"] == 0
    assert item["adjustments"] == [
        {
            "id": item["adjustments"][0]["id"],
            "amount_cents": -75,
            "reason": "correction",
            "note": "Stop counted twice",
            "created_at": item["adjustments"][0]["created_at"],
        }
    ]
    assert item["pay_cents"] == pay.final_cents - 75
    assert [(t["state"], t["credited_cents"]) for t in item["tips"]] == [("credited", 500), ("credited", 300)]
    assert item["tips_credited_cents"] == 800 and item["tips_pending_cents"] == 0

    unsettled = client.get(f"{API}/batches/{batches[1].pk}/").json()
    assert unsettled["settled"] is False and unsettled["paid"] is None and unsettled["pay_cents"] is None


def test_another_drivers_batch_is_404_and_their_money_invisible(driver, store, zone):
    other = DriverFactory(home_zone=zone)
    theirs = ended_batch(other, store=store)
    settle(theirs)
    payout(other, 900)
    client = api_for(driver)
    res = client.get(f"{API}/batches/{theirs.pk}/")
    assert res.status_code == 404 and res.json()["code"] == "not_found"
    assert client.get(f"{API}/batches/").json()["count"] == 0
    assert client.get(f"{API}/payouts/").json()["count"] == 0
    assert client.get(f"{API}/").json()["balance_cents"] == 0


def test_statement_json_and_csv_agree_and_add_up(driver, store, zone):
    tz = ZoneInfo(zone.timezone)
    monday = datetime(2026, 3, 2, tzinfo=tz)
    batch = ended_batch(driver, store=store)
    pay = settle(batch, when=monday + timedelta(hours=9))
    tip_rows(batch, captured=1, when=monday + timedelta(days=1))
    payout(driver, 1200, status="failed", reason="Account closed", when=monday + timedelta(days=3))
    settle(ended_batch(driver, store=store), when=monday - timedelta(seconds=1))  # Sunday before: opening

    client = api_for(driver)
    body = client.get(f"{API}/statements/2026-03-02/").json()
    assert body["week_start"] == "2026-03-02" and body["week_end"] == "2026-03-08"
    assert body["timezone"] == "America/New_York" and body["test_payments"] is True
    assert body["opening_balance_cents"] == pay.final_cents  # the other batch, same pay
    # pay, a tip, a payout and its failure (the money back): net is the pay and the tip
    assert [line["category"] for line in body["lines"]] == ["batch_pay", "tip", "payout", "payout"]
    assert body["net_cents"] == pay.final_cents + 500 == sum(line["amount_cents"] for line in body["lines"])
    assert body["closing_balance_cents"] == body["opening_balance_cents"] + body["net_cents"]
    assert body["totals"]["payout"] == 0 and body["totals"]["tip"] == 500
    assert body["earned_cents"] == pay.final_cents + 500

    res = client.get(f"{API}/statements/2026-03-02/?format=csv")
    assert res.status_code == 200 and res["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(res.content.decode())))
    assert [int(r["amount_cents"]) for r in rows] == [line["amount_cents"] for line in body["lines"]]
    assert sum(int(r["amount_cents"]) for r in rows) == body["net_cents"]
    assert rows[0]["date"] == "2026-03-02" and rows[0]["time"] == "09:00"  # the zone's time


@pytest.mark.parametrize(
    ("week", "message"),
    [
        (
            "2026-03-04",
            "2026-03-04 is a Wednesday: statement weeks start on a Monday (that week starts on 2026-03-02).",
        ),
        ("2026-02-30", "is not a date"),
        ("9999-12-27", "9999-12-27 is out of range: statements cover weeks from 2000 to 2999."),
        ("0001-01-01", "is out of range"),
    ],
)
def test_bad_weeks_are_400_with_a_clear_message(driver, week, message):
    for suffix in ("", "?format=csv"):
        res = api_for(driver).get(f"{API}/statements/{week}/{suffix}")
        assert res.status_code == 400 and res["Content-Type"] == "application/json"
        assert message in res.json()["fields"]["week"][0]


@pytest.mark.parametrize("week", ["yesterday", "20260302", "abc"])
def test_a_week_not_shaped_like_a_date_is_not_a_url_of_ours(driver, week):
    """Like an id that cannot be ours (tests/test_api_ids.py): the API's JSON 404."""
    res = api_for(driver).get(f"{API}/statements/{week}/")
    assert res.status_code == 404 and res["Content-Type"] == "application/json"


def test_an_unknown_format_is_400(driver):
    res = api_for(driver).get(f"{API}/statements/2026-03-02/?format=xml")
    assert res.status_code == 400 and "json or csv" in res.json()["fields"]["format"][0]
    # only the statement is CSV: anything else the view answers stays JSON
    res = api_for(driver).options(f"{API}/statements/2026-03-02/?format=csv")
    assert res.status_code == 200 and res["Content-Type"] == "application/json"


def test_payouts(driver):
    payout(driver, 5000)
    payout(driver, 700, fee=75, kind="instant", status="failed", reason="Card declined")
    results = api_for(driver).get(f"{API}/payouts/").json()["results"]
    assert [(p["kind"], p["status"], p["amount_cents"], p["fee_cents"]) for p in results] == [
        ("instant", "failed", 700, 75),
        ("weekly", "paid", 5000, 0),
    ]
    assert results[0]["failure_reason"] == "Card declined" and results[1]["paid_at"]


def test_suspended_driver_reads_their_money_and_strangers_are_refused(zone, store, client):
    suspended = DriverFactory(home_zone=zone, status=Driver.Status.SUSPENDED, reason_code="other")
    assert api_for(suspended).get(f"{API}/").status_code == 200
    assert APIClient().get(f"{API}/").status_code == 401
