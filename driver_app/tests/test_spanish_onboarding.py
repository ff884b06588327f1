"""Spanish (es) for the driver sign-up funnel, the customer tracking page and emails, and the
catalog itself: a browser asking for Spanish gets Spanish pages, and locale/es has no
untranslated or fuzzy entry left (fuzzy entries are ignored by Django, so they would show
in English)."""

import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import translation

from dispatch.models import Offer
from driver_app import earnings, labels
from driver_app.api.serializers import DECLINE_REASONS
from drivers import sms
from drivers.models import Driver, SlotClaim
from drivers.tests.factories import DriverFactory
from drivers.tests.helpers import JOIN, profile_data, verified
from orders import notifications
from orders.batch_editing import batch_create, batch_publish
from orders.models import Stop
from orders.returns import RETURN_REASONS
from orders.tests.factories import OrderFactory
from orders.transitions import batch_set_status
from payments.models import Payout
from stores.tests.factories import StoreFactory, UserFactory, ZoneFactory

PO_PATH = Path(settings.LOCALE_PATHS[0]) / "es" / "LC_MESSAGES" / "django.po"
# What a phone set to US Spanish sends: es-US falls back to the "es" catalog.
SPANISH = "es-US,es;q=0.9,en;q=0.5"


@pytest.fixture(autouse=True)
def _english_again(settings, tmp_path):
    """Media in a temp dir, an empty SMS outbox, and no Spanish leaking into the next test."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.SPARK_SMS_BACKEND = "locmem"
    sms.outbox.clear()
    yield
    sms.outbox.clear()
    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture
def es_client() -> Client:
    return Client(HTTP_ACCEPT_LANGUAGE=SPANISH)


@pytest.fixture
def zone(db):
    return ZoneFactory()


@pytest.fixture
def newcomer(db):
    return verified(UserFactory(email="nuevo@example.test", first_name="", last_name=""))


@pytest.fixture
def es_web(es_client, newcomer) -> Client:
    es_client.force_login(newcomer)
    return es_client


@pytest.fixture
def applicant(es_web, zone, newcomer) -> Driver:
    response = es_web.post(f"{JOIN}/profile/", profile_data(zone))
    assert response.status_code == 302, response.content
    return Driver.objects.get(user=newcomer)


def html(response, status: int = 200) -> str:
    assert response.status_code == status, response.status_code
    assert response["Content-Language"] == "es"
    return response.content.decode()


# --- Sign-up funnel ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_landing_page_is_in_spanish(es_client, zone):
    body = html(es_client.get(f"{JOIN}/"))
    assert "Entrega pedidos de supermercado con Spark" in body
    assert "Cómo funciona el pago" in body
    assert "$4.00 por cada lote" in body
    assert "son para ti, al 100%." in body and "100%%" not in body  # %% in the catalog renders as one %
    assert "Lo que necesitas" in body
    assert "Ya tengo una cuenta: iniciar sesión" in body
    assert "Deliver groceries with Spark" not in body


@pytest.mark.django_db
def test_english_is_still_the_default(client, zone):
    body = client.get(f"{JOIN}/").content.decode()
    assert "Deliver groceries with Spark" in body and "Entrega pedidos" not in body


@pytest.mark.django_db
def test_signup_page_is_in_spanish(es_client):
    body = html(es_client.get("/accounts/signup/"))
    assert "Crea tu cuenta" in body
    assert "¿Ya tienes una cuenta?" in body


@pytest.mark.django_db
def test_profile_step_and_its_errors_are_in_spanish(es_web, zone, newcomer):
    body = html(es_web.get(f"{JOIN}/profile/"))
    assert "Sobre ti" in body
    assert "Paso 1 de 7: Perfil" in body
    assert "Número de celular" in body and "Apellido" in body
    assert "Termina más tarde" in body

    response = es_web.post(f"{JOIN}/profile/", {})
    assert response.status_code == 400
    body = html(response, 400)
    assert "Corrige los campos marcados en rojo." in body
    errors = response.context["form"].errors
    assert errors["first_name"] == ["Escribe tu nombre."]
    assert errors["phone"] == ["Escribe tu número de celular."]
    assert not Driver.objects.filter(user=newcomer).exists()


@pytest.mark.django_db
def test_phone_step_sms_and_code_errors_are_in_spanish(es_web, applicant):
    body = html(es_web.get(f"{JOIN}/phone/"))
    assert "Verifica tu número de celular" in body
    assert "Enviarme un código" in body

    assert es_web.post(f"{JOIN}/phone/", {"action": "send"}).status_code == 302
    assert "Tu código de verificación de Spark es" in sms.outbox[-1].body
    code = re.search(r"\b(\d{6})\b", sms.outbox[-1].body).group(1)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"

    response = es_web.post(f"{JOIN}/phone/", {"action": "verify", "code": wrong})
    assert response.status_code == 400
    assert response.context["form"].errors["code"] == ["Ese código no es correcto. Te quedan 4 intentos."]


@pytest.mark.django_db
def test_vehicle_documents_and_background_check_steps_are_in_spanish(es_web, applicant):
    body = html(es_web.get(f"{JOIN}/vehicle/"))
    assert "Tu vehículo" in body and "Tipo de vehículo" in body and "Placa" in body

    response = es_web.post(
        f"{JOIN}/vehicle/",
        {"vehicle_type": "suv", "make": "", "model": "CR-V", "color": "Gris", "plate": "ABC1234", "tote_capacity": "0"},
    )
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert errors["make"] == ["Escribe la marca, por ejemplo Toyota."]
    assert errors["tote_capacity"] == ["Escribe cuántas cajas de compras caben en tu vehículo: de 4 a 80."]

    body = html(es_web.get(f"{JOIN}/documents/"))
    assert "Licencia de conducir y seguro" in body and "Seguro del vehículo" in body

    body = html(es_web.get(f"{JOIN}/age/"))
    assert "Tu fecha de nacimiento" in body
    assert "Para repartir en Nashville debes tener 21 años o más: los pedidos pueden incluir alcohol." in body
    young = (date.today() - timedelta(days=19 * 366)).isoformat()
    refused = es_web.post(f"{JOIN}/age/", {"birth_date": young})
    assert refused.status_code == 403
    body = refused.content.decode()
    assert "No podemos aceptar tu solicitud" in body
    assert "Debes tener 21 años o más para repartir en Nashville" in body
    assert es_web.post(f"{JOIN}/age/", {"birth_date": "1990-05-17"}).status_code == 302

    body = html(es_web.get(f"{JOIN}/background-check/"))
    assert "Aviso sobre la investigación de antecedentes" in body
    assert "Leí el aviso: continuar" in body


@pytest.mark.django_db
def test_status_page_is_in_spanish(es_web, applicant):
    body = html(es_web.get(f"{JOIN}/status/"))
    assert "Tu solicitud de conductor" in body
    assert "Completa estos pasos" in body
    assert re.search(r"Todavía faltan \d+ cosas para que puedas enviar tu solicitud\.", body)
    assert "Número de celular verificado" in body  # the checklist labels (lazy, translated per request)


# --- Customer tracking page and emails -------------------------------------------------------------


def assigned_order():
    """An order in a published batch that driver Dana (blue Toyota Corolla) has taken."""
    store = StoreFactory(name="Kroger Germantown")
    order = OrderFactory(store=store, customer_name="Lucía Pérez")
    batch = batch_create(store=store, orders=[order])
    batch_publish(batch=batch)
    driver = DriverFactory(user__first_name="Dana", home_zone=store.zone)
    batch_set_status(batch=batch, to="assigned", updates={"driver": driver})
    order.refresh_from_db()
    return order


@pytest.mark.django_db
def test_tracking_page_and_status_json_are_in_spanish(es_client):
    order = OrderFactory(store=StoreFactory(name="Kroger Germantown"))
    body = html(es_client.get(reverse("tracking", args=[order.tracking_token])))
    assert "Tu entrega de Spark" in body
    assert "Tu pedido de Kroger Germantown" in body
    assert "Recibimos tu pedido" in body
    assert "Horario de entrega" in body
    assert "Pedido recibido" in body and "En preparación" in body and "En camino" in body
    assert "Esta página se actualiza sola." in body
    assert "We have your order" not in body

    state = es_client.get(reverse("tracking-status", args=[order.tracking_token])).json()
    assert state["headline"] == "Recibimos tu pedido"
    assert state["status_label"] == "Pedido recibido"


@pytest.mark.django_db
def test_tracking_page_with_a_driver_is_in_spanish(es_client):
    order = assigned_order()
    body = html(es_client.get(reverse("tracking", args=[order.tracking_token])))
    assert "La tienda está preparando tu pedido" in body
    assert "Dana recogerá tu pedido en la tienda." in body
    # No saved card with this order: the page neither offers a raise nor says it can.
    assert "aumentar tu propina" not in body and "Propina" in body


@pytest.mark.django_db
def test_unknown_tracking_link_is_in_spanish(es_client):
    response = es_client.get(reverse("tracking", args=["x" * 32]))
    assert response.status_code == 404
    assert "No encontramos este enlace de seguimiento" in response.content.decode()


@pytest.mark.django_db
def test_customer_email_renders_in_spanish():
    order = assigned_order()
    with translation.override("es"):
        message = notifications.build_email(order, notifications.ON_THE_WAY)
    assert message.subject == "Tu pedido de Kroger Germantown va en camino"
    assert message.body.startswith("Hola, Lucía:")
    assert "Dana te lo lleva en este vehículo: Blue Toyota Corolla." in message.body
    assert "No compartas este enlace" in message.body


# --- The catalog ----------------------------------------------------------------------------------


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), text)


def parse_po(path: Path) -> list[dict]:
    """A minimal .po reader: entries with flags, msgid, msgid_plural and msgstr(s); obsolete
    (#~) entries are skipped. Continuation lines ("...") extend the last keyword."""
    entries: list[dict] = []
    entry: dict | None = None
    key = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#~"):
            if not line:
                entry, key = None, None
            continue
        if entry is None:
            entry = {"flags": set(), "msgid": "", "msgid_plural": None, "msgstr": {}}
            entries.append(entry)
        if line.startswith("#,"):
            entry["flags"].update(f.strip() for f in line[2:].split(","))
            continue
        if line.startswith("#"):
            continue
        match = re.match(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+"(.*)"$', line)
        if match:
            keyword, index, text = match.groups()
            if keyword.startswith("msgstr"):
                key = ("msgstr", int(index) if index is not None else 0)
                entry["msgstr"][key[1]] = _unquote(text)
            else:
                key = (keyword, None)
                entry[keyword] = _unquote(text)
        elif line.startswith('"') and key is not None:
            if key[0] == "msgstr":
                entry["msgstr"][key[1]] += _unquote(line[1:-1])
            else:
                entry[key[0]] += _unquote(line[1:-1])
    return [e for e in entries if "msgid" in e and e["msgstr"]]


@pytest.fixture(scope="module")
def catalog() -> tuple[dict, list[dict]]:
    entries = parse_po(PO_PATH)
    header = next(e for e in entries if e["msgid"] == "")
    return header, [e for e in entries if e["msgid"] != ""]


def test_catalog_has_no_untranslated_or_fuzzy_entry(catalog):
    header, entries = catalog
    assert len(entries) > 600
    untranslated = [e["msgid"] for e in entries if any(not s for s in e["msgstr"].values())]
    fuzzy = [e["msgid"] for e in entries if "fuzzy" in e["flags"]]
    assert untranslated == []
    assert fuzzy == []
    assert "fuzzy" not in header["flags"]


def test_plural_entries_match_the_plural_forms_header(catalog):
    header, entries = catalog
    nplurals = int(re.search(r"nplurals=(\d+);", header["msgstr"][0]).group(1))
    plurals = [e for e in entries if e["msgid_plural"] is not None]
    assert plurals
    for e in plurals:
        assert sorted(e["msgstr"]) == list(range(nplurals)), e["msgid"]


def test_placeholders_and_tags_survive_translation(catalog):
    _, entries = catalog

    def marks(text):
        return sorted(re.findall(r"%\(\w+\)[sd]|%%|\{\w+\}|</?[a-z]+\b", text))

    assert len(entries) > 100  # the whole catalog, not an empty parse
    for e in entries:
        for i, text in e["msgstr"].items():
            source = e["msgid"] if i == 0 or e["msgid_plural"] is None else e["msgid_plural"]
            assert marks(text) == marks(source), (e["msgid"], text)


def test_compiled_catalog_is_up_to_date(catalog):
    """Every .po translation is what Django serves: django.mo was recompiled after the last edit."""
    _, entries = catalog
    with translation.override("es"):
        for e in entries:
            if e["msgid_plural"] is None:
                assert translation.gettext(e["msgid"]) == e["msgstr"][0], e["msgid"]
            else:
                assert translation.ngettext(e["msgid"], e["msgid_plural"], 1) == e["msgstr"][0], e["msgid"]
                many = e["msgstr"][max(e["msgstr"])]  # 5 takes the last form, with 2 or 3 plural forms
                assert translation.ngettext(e["msgid"], e["msgid_plural"], 5) == many, e["msgid"]


# Every status, kind and reason a driver reads, with the labels the app shows it by: (what a
# value can be, its labels). Removed stops are never listed to the driver; only live slot
# claims are.
DRIVER_LABELS = {
    "driver status": (Driver.Status.values, labels.STATUS_LABELS),
    "suspension reason": ([v for v in Driver.ReasonCode.values if v], labels.REASON_LABELS),
    "offer status": (Offer.Status.values, labels.OFFER_STATUS_LABELS),
    "offer kind": (Offer.Kind.values, labels.OFFER_KIND_LABELS),
    "stop status": ([v for v in Stop.Status.values if v != Stop.Status.REMOVED], labels.STOP_STATUS_LABELS),
    "slot claim": (list(SlotClaim.ACTIVE_STATUSES), labels.SLOT_CLAIM_LABELS),
    "decline reason": (list(DECLINE_REASONS), labels.DECLINE_LABELS),
    "return reason": (list(RETURN_REASONS), labels.FAIL_LABELS),
    "payout kind": (Payout.Kind.values, earnings.PAYOUT_KIND_LABELS),
    "payout status": (Payout.Status.values, earnings.PAYOUT_STATUS_LABELS),
}
# Choices a driver reads as the model labels them (get_FOO_display: the home page, the sign-up
# funnel's vehicle picker and review, /api/v1/me/): the labels themselves are translated.
DRIVER_MODEL_CHOICES = {"driver status": Driver.Status, "vehicle": Driver.Vehicle}


def _untranslated(label_list, catalog) -> list[str]:
    """The labels with no Spanish: not in the catalog, or not what Django serves in Spanish."""
    spanish = {e["msgid"]: e["msgstr"][0] for e in catalog[1] if e["msgid_plural"] is None}
    missing = []
    for label in label_list:
        with translation.override("en"):
            msgid = str(label)
        with translation.override("es"):
            served = str(label)
        if not spanish.get(msgid) or served != spanish[msgid]:
            missing.append(msgid)
    return missing


@pytest.mark.parametrize("what", sorted(DRIVER_LABELS))
def test_every_status_label_a_driver_sees_has_a_spanish_label(catalog, what):
    values, shown = DRIVER_LABELS[what]
    assert [v for v in values if v not in shown] == [], f"{what}: values without a label"
    assert _untranslated(shown.values(), catalog) == [], what


@pytest.mark.parametrize("what", sorted(DRIVER_MODEL_CHOICES))
def test_model_choices_a_driver_reads_are_translated(catalog, what):
    assert _untranslated(DRIVER_MODEL_CHOICES[what].labels, catalog) == [], what


@pytest.mark.django_db
def test_the_home_page_says_the_account_status_in_spanish(es_client):
    driver = DriverFactory()
    es_client.force_login(driver.user)
    body = html(es_client.get("/"))
    assert "Tu cuenta de conductor está activa." in body
