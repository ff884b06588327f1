"""Manager pages: the store's delivery slots and its team."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from dashboard.forms import ApiKeyForm, MembershipForm, SlotTemplateForm
from dashboard.page import NOT_AN_ID, confirm_first, show_domain_error, store_view
from spark.errors import DomainError
from spark.ids import parse_id
from stores import services as store_services
from stores.models import DeliverySlot, SlotTemplate, StoreApiKey, StoreMembership

# The raw key of a key just created waits here for the one page that shows it (after the redirect,
# so a reload creates nothing); that page takes it out.
NEW_KEY_SESSION = "dashboard_new_api_key"
# The posted id each action of the team page names its row with.
ID_FIELD = {"remove_member": "membership", "revoke_key": "key"}


def _template_of(request, store, value) -> SlotTemplate | None:
    """The store's template named by a posted or linked id; None (with the message) when it is not an id."""
    template_id = parse_id(value)
    if template_id is None:
        messages.error(request, NOT_AN_ID)
        return None
    return get_object_or_404(SlotTemplate, pk=template_id, store=store)


def _template_initial(template: SlotTemplate) -> dict:
    return {
        "weekdays": list(template.weekdays),
        "start_time": template.start_time.strftime("%H:%M"),
        "end_time": template.end_time.strftime("%H:%M"),
        "capacity": template.capacity,
    }


def _slot_template_save(request, store, form, template):
    """Create or update a template from a valid form. The redirect, or None after a refusal."""
    fields = {**form.cleaned_data, "weekdays": "".join(form.cleaned_data["weekdays"])}
    try:
        if template is None:
            store_services.slot_template_create(store=store, **fields)
            messages.success(request, _("Template saved; slots for the next 14 days are open."))
        else:
            store_services.slot_template_update(template=template, **fields)
            messages.success(request, _("Template changed; open slots nobody signed up for follow the new times."))
    except DomainError as exc:
        show_domain_error(request, exc)
        return None
    return redirect("dashboard:slots", store_id=store.pk)


@store_view(manager=True)
def slots(request, store):
    here = reverse("dashboard:slots", kwargs={"store_id": store.pk})
    if request.method != "POST":
        if "edit" not in request.GET:
            return _slots_page(request, store, SlotTemplateForm(), 200)
        editing = _template_of(request, store, request.GET["edit"])
        if editing is None:
            return _slots_page(request, store, SlotTemplateForm(), 400)
        return _slots_page(request, store, SlotTemplateForm(initial=_template_initial(editing)), 200, editing=editing)
    action = request.POST.get("action")
    editing = None
    if action in ("pause", "resume", "delete", "update"):
        editing = _template_of(request, store, request.POST.get("template"))
        if editing is None:
            return _slots_page(request, store, SlotTemplateForm(), 400)
        if action != "update":
            return _template_action(request, editing, action, here)
    form = SlotTemplateForm(request.POST)
    if form.is_valid():
        done = _slot_template_save(request, store, form, editing)
        if done:
            return done
    return _slots_page(request, store, form, 200, editing=editing)


def _template_action(request, template: SlotTemplate, action: str, here: str):
    """Pause, resume or (once confirmed) delete a template."""
    if action == "delete":
        asked = confirm_first(request, _("Delete this slot template?"), back=here)
        if asked:
            return asked
        store_services.slot_template_delete(template=template)
        messages.success(request, _("Template deleted; its open slots nobody signed up for are gone."))
    else:
        store_services.slot_template_set_active(template=template, active=action == "resume")
    return redirect(here)


def _slots_page(request, store, form, status: int, *, editing: SlotTemplate | None = None):
    upcoming = DeliverySlot.objects.filter(store=store, ends_at__gte=timezone.now()).order_by("starts_at")[:60]
    context = {
        "store": store,
        "form": form,
        "editing": editing,
        "templates": SlotTemplate.objects.filter(store=store),
        "upcoming": upcoming,
    }
    return render(request, "dashboard/slots.html", context, status=status)


def _team_post(request, store, forms: dict):
    """Carry out one action of the team page. The redirect when it is done, else None (the page
    shows the form's errors or the message)."""
    here = reverse("dashboard:team", kwargs={"store_id": store.pk})
    action = request.POST.get("action")
    if action == "add_member":
        forms["member_form"] = MembershipForm(request.POST, prefix="m")
        if forms["member_form"].is_valid():
            store_services.membership_add(store=store, **forms["member_form"].cleaned_data)
            messages.success(request, _("Added."))
            return redirect(here)
    elif action == "create_key":
        forms["key_form"] = ApiKeyForm(request.POST, prefix="k")
        if forms["key_form"].is_valid():
            created = store_services.store_api_key_create(
                store=store, name=forms["key_form"].cleaned_data["name"], created_by=request.user
            )
            request.session[NEW_KEY_SESSION] = {"store": store.pk, "key": created.key.pk, "raw": created.raw}
            return redirect(here)
    elif action in ID_FIELD and parse_id(request.POST.get(ID_FIELD[action])) is None:
        messages.error(request, NOT_AN_ID)
    elif action == "remove_member":
        membership = get_object_or_404(StoreMembership, pk=request.POST["membership"], store=store)
        question = _("Remove %(email)s from this store?") % {"email": membership.user.email}
        return _once_confirmed(
            request, question, here, lambda: store_services.membership_remove(membership=membership), _("Removed.")
        )
    elif action == "revoke_key":
        key = get_object_or_404(StoreApiKey, pk=request.POST["key"], store=store)
        question = _("Revoke the key “%(name)s”? It stops working at once.") % {"name": key.name}
        return _once_confirmed(
            request,
            question,
            here,
            lambda: store_services.store_api_key_revoke(key=key),
            _("Key revoked; it stops working now."),
        )
    return None


def _once_confirmed(request, question: str, here: str, act, done: str):
    """Ask `question` first (confirm_first); once answered, `act()` and say `done`."""
    asked = confirm_first(request, question, back=here)
    if asked:
        return asked
    act()
    messages.success(request, done)
    return redirect(here)


@store_view(manager=True)
def team(request, store):
    forms = {"member_form": MembershipForm(prefix="m"), "key_form": ApiKeyForm(prefix="k")}
    status = 200
    if request.method == "POST":
        try:
            done = _team_post(request, store, forms)
            if done:
                return done
        except DomainError as exc:
            show_domain_error(request, exc)
        status = 400
    new_key = request.session.pop(NEW_KEY_SESSION, None) if request.method == "GET" else None
    return render(
        request,
        "dashboard/team.html",
        {
            "store": store,
            "members": StoreMembership.objects.filter(store=store)
            .select_related("user")
            .order_by("role", "user__email"),
            "keys": StoreApiKey.objects.filter(store=store),
            "new_key": new_key["raw"] if new_key and new_key["store"] == store.pk else None,
            **forms,
        },
        status=status,
    )
