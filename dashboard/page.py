"""What every dashboard page shares: the store_view decorator (login, membership of the store in
the URL, manager-only pages) and small helpers."""

import zoneinfo
from datetime import datetime, time, timedelta
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext_lazy

from spark import roles
from spark.errors import DomainError
from spark.httpkit import safe_next
from stores.models import Store

SESSION_ENDED = gettext_lazy("Your session has ended. Log in again to go on.")


def store_view(manager: bool = False):
    """Resolve <store_id> against the user's memberships (another store is a 404) and run
    the view in the store's local time."""

    def decorator(view):
        @wraps(view)
        def entry(request, *args, **kwargs):
            # login_required would redirect htmx to the login page and swap it into the target.
            if request.htmx and not request.user.is_authenticated:
                return HttpResponse(str(SESSION_ENDED), status=401, content_type="text/plain; charset=utf-8")
            return wrapper(request, *args, **kwargs)

        @login_required
        @wraps(view)
        def wrapper(request, store_id: int, *args, **kwargs):
            allowed = roles.store_ids_for(request.user, roles=("manager",) if manager else None)
            if store_id not in allowed:
                raise Http404("No such store.")
            store = get_object_or_404(Store.objects.select_related("zone"), pk=store_id)
            request.store = store
            request.my_stores = list(Store.objects.filter(pk__in=roles.store_ids_for(request.user)))
            request.is_manager = roles.is_store_member(request.user, store.pk, manager=True)
            with timezone.override(zoneinfo.ZoneInfo(store.zone.timezone)):
                return view(request, store, *args, **kwargs)

        return entry

    return decorator


def day_bounds(store, day=None):
    tz = zoneinfo.ZoneInfo(store.zone.timezone)
    day = day or timezone.localdate(timezone=tz)
    start = datetime.combine(day, time.min, tzinfo=tz)
    return start, start + timedelta(days=1)


def back_to(request, default: str):
    return redirect(safe_next(request, default))


def show_domain_error(request, exc: DomainError):
    messages.error(request, exc.message)


def htmx_error(exc: DomainError) -> HttpResponse:
    """The answer to an htmx action that was refused: its 4xx status and the message as plain
    text. htmx swaps nothing on a 4xx; dashboard.js puts this text next to the control the
    associate used (a flash message would only show on some later page)."""
    return HttpResponse(exc.message, status=exc.status_code, content_type="text/plain; charset=utf-8")


# A posted id that is not an id: a tampered form, or a page from before a change. Nothing is done.
NOT_AN_ID = gettext_lazy("That form sent something we did not understand; reload the page and try again.")


def confirm_first(request, question: str, *, back: str):
    """None once the associate confirmed this POST; else the page that asks `question` first.

    The form carries confirmed="" and data-confirm: dashboard.js asks in a dialog and posts
    confirmed=1. Without the script (or a hand-made POST) this page asks instead and posts the
    same fields again with confirmed=1, so nothing is revoked or removed unasked either way."""
    if request.POST.get("confirmed") == "1":
        return None
    fields = [
        (name, value)
        for name, values in request.POST.lists()
        if name not in ("csrfmiddlewaretoken", "confirmed")
        for value in values
    ]
    context = {"store": request.store, "question": question, "fields": fields, "back": safe_next(request, back)}
    return render(request, "dashboard/confirm.html", context)
