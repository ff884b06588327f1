"""Manager pages: the store's delivery slots and its team."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _

from dashboard.forms import ApiKeyForm, MembershipForm, SlotTemplateForm
from dashboard.page import NOT_AN_ID, show_domain_error, store_view
from spark.errors import DomainError
from spark.ids import parse_id
from stores import services as store_services
from stores.models import DeliverySlot, SlotTemplate, StoreApiKey, StoreMembership


@store_view(manager=True)
def slots(request, store):

    form = SlotTemplateForm(request.POST or None)
    status = 200
    if request.method == "POST":
        action = request.POST.get("action")
        if action in ("pause", "resume"):
            template_id = parse_id(request.POST.get("template"))
            if template_id is None:
                messages.error(request, NOT_AN_ID)
                form, status = SlotTemplateForm(), 400
            else:
                template = get_object_or_404(SlotTemplate, pk=template_id, store=store)
                store_services.slot_template_set_active(template=template, active=action == "resume")
                return redirect("dashboard:slots", store_id=store.pk)
        elif form.is_valid():
            try:
                store_services.slot_template_create(
                    store=store,
                    weekdays="".join(form.cleaned_data["weekdays"]),
                    start_time=form.cleaned_data["start_time"],
                    end_time=form.cleaned_data["end_time"],
                    capacity=form.cleaned_data["capacity"],
                )
                messages.success(request, _("Template saved; slots for the next 14 days are open."))
                return redirect("dashboard:slots", store_id=store.pk)
            except DomainError as exc:
                show_domain_error(request, exc)
    upcoming = DeliverySlot.objects.filter(store=store, ends_at__gte=timezone.now()).order_by("starts_at")[:60]
    return render(
        request,
        "dashboard/slots.html",
        {
            "store": store,
            "form": form,
            "templates": SlotTemplate.objects.filter(store=store),
            "upcoming": upcoming,
        },
        status=status,
    )


@store_view(manager=True)
def team(request, store):

    member_form = MembershipForm(prefix="m")
    key_form = ApiKeyForm(prefix="k")
    new_key = None
    status = 200
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "add_member":
                member_form = MembershipForm(request.POST, prefix="m")
                if member_form.is_valid():
                    store_services.membership_add(store=store, **member_form.cleaned_data)
                    messages.success(request, _("Added."))
                    return redirect("dashboard:team", store_id=store.pk)
            elif action == "remove_member" and parse_id(request.POST.get("membership")) is None:
                messages.error(request, NOT_AN_ID)
                status = 400
            elif action == "remove_member":
                membership = get_object_or_404(StoreMembership, pk=request.POST.get("membership"), store=store)
                store_services.membership_remove(membership=membership)
                messages.success(request, _("Removed."))
                return redirect("dashboard:team", store_id=store.pk)
            elif action == "create_key":
                key_form = ApiKeyForm(request.POST, prefix="k")
                if key_form.is_valid():
                    new_key = store_services.store_api_key_create(
                        store=store, name=key_form.cleaned_data["name"], created_by=request.user
                    ).raw
            elif action == "revoke_key" and parse_id(request.POST.get("key")) is None:
                messages.error(request, NOT_AN_ID)
                status = 400
            elif action == "revoke_key":
                key = get_object_or_404(StoreApiKey, pk=request.POST.get("key"), store=store)
                store_services.store_api_key_revoke(key=key)
                messages.success(request, _("Key revoked; it stops working now."))
                return redirect("dashboard:team", store_id=store.pk)
        except DomainError as exc:
            show_domain_error(request, exc)
    return render(
        request,
        "dashboard/team.html",
        {
            "store": store,
            "members": StoreMembership.objects.filter(store=store)
            .select_related("user")
            .order_by("role", "user__email"),
            "keys": StoreApiKey.objects.filter(store=store),
            "member_form": member_form,
            "key_form": key_form,
            "new_key": new_key,
        },
        status=status,
    )
