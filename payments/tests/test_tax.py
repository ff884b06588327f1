"""Tax details (W-9, TIN encrypted at rest, shown masked) and the 1099-NEC figures for ops
(payments.contractor.tax, the driver's tax page, the admin's CSV)."""

import csv
import io
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test import Client

from drivers.tests.factories import DriverFactory
from payments.contractor import tax
from payments.models import Payout, TaxProfile
from spark.errors import DomainError
from stores.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

W9 = {
    "legal_name": "Ana María López",
    "tin_type": "ssn",
    "tin": "123-45-6789",
    "address_line1": "100 Broadway",
    "city": "Nashville",
    "state": "tn",
    "postal_code": "37203",
    "certify": True,
}


def test_the_tin_is_encrypted_at_rest_and_shown_masked(driver):
    profile = tax.tax_details_save(driver=driver, **W9)
    with connection.cursor() as cursor:
        cursor.execute("SELECT tin_encrypted FROM payments_taxprofile WHERE id = %s", [profile.pk])
        [stored] = cursor.fetchone()
    assert "123456789" not in stored and "6789" not in stored
    assert tax.tin_masked(profile) == "•••-••-6789"
    assert tax.tin_decrypt(profile.tin_encrypted) == "123456789"
    assert profile.state == "TN"


def test_a_rotated_key_still_reads_old_tins(driver, settings):
    old_key = "x" * 43 + "="
    settings.SPARK_TIN_ENCRYPTION_KEYS = [old_key]
    profile = tax.tax_details_save(driver=driver, **W9)
    settings.SPARK_TIN_ENCRYPTION_KEYS = ["y" * 43 + "=", old_key]
    assert tax.tin_decrypt(profile.tin_encrypted) == "123456789"


@pytest.mark.parametrize(
    "change, field",
    [
        ({"tin": "000-12-3456"}, "tin"),
        ({"tin": "12345"}, "tin"),
        ({"tin": "abc"}, "tin"),
        ({"tin_type": "itin"}, "tin_type"),
        ({"state": "XX"}, "state"),
        ({"postal_code": "3720"}, "postal_code"),
        ({"certify": False}, "certify"),
        ({"legal_name": " "}, "legal_name"),
    ],
)
def test_bad_details_are_refused_and_nothing_is_saved(driver, change, field):
    with pytest.raises(DomainError) as refused:
        tax.tax_details_save(driver=driver, **{**W9, **change})
    assert field in refused.value.fields
    assert not TaxProfile.objects.exists()


def test_the_driver_saves_a_w9_and_sees_only_the_last_four_digits(driver):
    client = Client()
    client.force_login(driver.user)
    data = {**W9, "certify": "on"}
    response = client.post("/driver/payouts/tax/", data)
    assert response.status_code == 302
    page = client.get("/driver/payouts/").content.decode()
    assert "•••-••-6789" in page and "123-45-6789" not in page and "123456789" not in page
    # changing the address keeps the TIN on file when it is left empty
    client.post("/driver/payouts/tax/", {**data, "tin": "", "city": "Memphis"})
    profile = TaxProfile.objects.get(driver=driver)
    assert (profile.city, tax.tin_decrypt(profile.tin_encrypted)) == ("Memphis", "123456789")
    # the form never sends the TIN back
    assert "6789" not in client.get("/driver/payouts/tax/").content.decode().replace("•••-••-6789", "")


def test_a_bad_tin_on_the_page_is_400_in_spanish_and_not_echoed(driver):
    client = Client(HTTP_ACCEPT_LANGUAGE="es")
    client.force_login(driver.user)
    response = client.post("/driver/payouts/tax/", {**W9, "tin": "666-12-3456", "certify": "on"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Escribe un SSN o EIN válido de 9 dígitos." in body and "666-12-3456" not in body
    assert not TaxProfile.objects.exists()


def paid(driver, cents: int, when: datetime, fee: int = 0, status=Payout.Status.PAID) -> None:
    Payout.objects.create(
        driver=driver,
        kind=Payout.Kind.INSTANT if fee else Payout.Kind.WEEKLY,
        amount_cents=cents,
        fee_cents=fee,
        status=status,
        paid_at=when,
        idempotency_key=f"t:{driver.pk}:{cents}:{when.isoformat()}",
    )


def test_1099_nec_lists_drivers_paid_at_least_the_years_threshold():
    filed, small, missing = DriverFactory(), DriverFactory(), DriverFactory()
    tax.tax_details_save(driver=filed, **{**W9, "legal_name": "=HYPERLINK(evil)"})
    in_2026 = datetime(2026, 6, 1, tzinfo=UTC)
    paid(filed, 150_000, in_2026)
    paid(filed, 49_950, in_2026, fee=50)  # a cash-out: the fee was the driver's money too
    paid(filed, 90_000, datetime(2025, 12, 31, 23, 0, tzinfo=UTC))  # another tax year
    paid(filed, 70_000, in_2026, status=Payout.Status.FAILED)  # failed: never paid
    paid(small, 199_999, in_2026)  # below 2026's $2,000
    paid(missing, 250_000, in_2026)
    rows = list(csv.DictReader(io.StringIO(tax.nec_1099_csv(2026))))
    assert [(r["driver_id"], r["box1_nonemployee_compensation"], r["note"]) for r in rows] == [
        (str(filed.pk), "2000.00", ""),
        (str(missing.pk), "2500.00", "W-9 missing"),
    ]
    assert rows[0]["tin"] == "123456789" and rows[0]["legal_name"] == "'=HYPERLINK(evil)"
    # 2025: the $600 threshold
    assert [r["driver_id"] for r in csv.DictReader(io.StringIO(tax.nec_1099_csv(2025)))] == [str(filed.pk)]


def test_ops_download_the_1099_nec_csv(client, settings):
    driver = DriverFactory()
    tax.tax_details_save(driver=driver, **W9)
    paid(driver, 300_000, datetime(2026, 3, 1, tzinfo=UTC))
    ops = UserFactory(email="ops-tax@example.test", is_staff=True, is_superuser=True)
    settings.SPARK_ADMIN_MFA_EXEMPT_EMAILS = [ops.email]
    client.force_login(ops)
    listing = client.get("/admin/payments/taxprofile/").content.decode()
    assert "•••-••-6789" in listing and "123456789" not in listing
    response = client.get("/admin/payments/taxprofile/1099-nec/?year=2026")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "spark-1099-nec-2026.csv" in response["Content-Disposition"]
    assert "123456789" in response.content.decode() and "3000.00" in response.content.decode()
    # staff without the permission get nothing
    clerk = UserFactory(email="clerk@example.test", is_staff=True)
    settings.SPARK_ADMIN_MFA_EXEMPT_EMAILS = [clerk.email]
    client.force_login(clerk)
    assert client.get("/admin/payments/taxprofile/1099-nec/?year=2026").status_code == 403


def test_the_driver_downloads_their_own_1099_nec_with_the_tin_masked(driver):
    tax.tax_details_save(driver=driver, **W9)
    paid(driver, 80_000, datetime(2025, 5, 1, tzinfo=UTC))
    paid(driver, 100, datetime(2024, 5, 1, tzinfo=UTC))  # below 2024's threshold: no form
    client = Client()
    client.force_login(driver.user)
    page = client.get("/driver/payouts/").content.decode()
    assert "/driver/payouts/1099-nec/2025.csv" in page and "2024.csv" not in page
    response = client.get("/driver/payouts/1099-nec/2025.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    [row] = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert row == {
        "tax_year": "2025",
        "payer": "Spark",
        "recipient": "Ana María López",
        "recipient_tin": "•••-••-6789",
        "box1_nonemployee_compensation": "800.00",
    }
    assert client.get("/driver/payouts/1099-nec/2024.csv").status_code == 404
    # another driver gets their own (none), never this one's
    other = DriverFactory()
    other_client = Client()
    other_client.force_login(other.user)
    assert other_client.get("/driver/payouts/1099-nec/2025.csv").status_code == 404


def test_a_hostile_legal_name_is_escaped_on_the_page(driver):
    tax.tax_details_save(driver=driver, **{**W9, "legal_name": "<script>alert(1)</script>"})
    client = Client()
    client.force_login(driver.user)
    page = client.get("/driver/payouts/").content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
