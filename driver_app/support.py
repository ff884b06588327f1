"""The driver's Help screen: report a problem with an order, a store, the app or pay, with one
of their batches attached if they want; it lands in the ops queue (orders.support, the
admin's "Help requests"). Their latest reports and whether ops resolved them are listed below.
Reached from the app bar on every page and from the active batch screen (?batch=<id>)."""

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from driver_app.labels import HELP_STATUS_LABELS, HELP_TOPIC_LABELS
from driver_app.page import driver_page, page_context
from drivers.models import Driver
from orders.models import Batch
from orders.support import TEXT_MAX, clean_support_text, support_request_create, support_requests_of
from spark.errors import DomainError

# Batches a report can be about: the driver's own, recent enough to remember.
BATCHES_SHOWN_FOR = timedelta(days=14)
BATCHES_SHOWN = 10


def _batch_choices(driver: Driver) -> list[tuple[str, str]]:
    since = timezone.now() - BATCHES_SHOWN_FOR
    batches = (
        Batch.objects.filter(driver=driver, assigned_at__gte=since)
        .select_related("store")
        .order_by("-assigned_at")[:BATCHES_SHOWN]
    )
    return [("", _("No batch"))] + [
        (
            str(b.pk),
            _("Batch %(id)s · %(store)s · %(date)s")
            % {
                "id": b.pk,
                "store": b.store.name,
                "date": formats.date_format(timezone.localtime(b.assigned_at), "M j"),
            },
        )
        for b in batches
    ]


class HelpForm(forms.Form):
    topic = forms.ChoiceField(
        label=gettext_lazy("What is it about?"),
        choices=list(HELP_TOPIC_LABELS.items()),
        widget=forms.RadioSelect,
        error_messages={"required": gettext_lazy("Choose what the problem is about.")},
    )
    batch = forms.ChoiceField(label=gettext_lazy("Which batch (optional)"), required=False)
    text = forms.CharField(
        label=gettext_lazy("What happened?"),
        strip=False,
        widget=forms.Textarea(attrs={"rows": 5, "maxlength": TEXT_MAX}),
        error_messages={"required": gettext_lazy("Tell us what happened.")},
    )

    def __init__(self, *args, driver: Driver, **kwargs):
        super().__init__(*args, **kwargs)
        batch_field = self.fields["batch"]
        assert isinstance(batch_field, forms.ChoiceField)
        batch_field.choices = _batch_choices(driver)
        batch_field.error_messages["invalid_choice"] = _("Choose one of your batches, or none.")
        self.fields["text"].help_text = _("Plain text, up to %(n)d characters.") % {"n": TEXT_MAX}

    def clean_text(self):
        # The service's own check, so the form names every wrong field at once.
        try:
            return clean_support_text(self.cleaned_data["text"])
        except DomainError as exc:
            raise forms.ValidationError(exc.fields.get("text") or [exc.message]) from None


@require_http_methods(["GET", "POST"])
@driver_page
def help_page(request, driver: Driver):
    status = 200
    if request.method == "POST":
        form = HelpForm(request.POST, driver=driver)
        if form.is_valid():
            data = form.cleaned_data
            batch = Batch.objects.filter(pk=int(data["batch"]), driver=driver).first() if data["batch"] else None
            try:
                support_request_create(driver=driver, topic=data["topic"], text=data["text"], batch=batch)
            except DomainError as exc:
                _place(form, exc)
                status = exc.status_code
            else:
                messages.success(request, _("Sent. Ops see your report in their queue; its status shows here."))
                return redirect("driver_app:help")
        else:
            status = 400
    else:
        wanted = request.GET.get("batch", "")
        form = HelpForm(driver=driver, initial={"batch": wanted})
    reports = [
        {
            "report": r,
            "topic_label": HELP_TOPIC_LABELS.get(r.topic, r.topic),
            "status_label": HELP_STATUS_LABELS.get(r.status, r.status),
        }
        for r in support_requests_of(driver=driver)
    ]
    context = page_context(request, driver, "help", form=form, reports=reports)
    return render(request, "driver/help.html", context, status=status)


def _place(form: HelpForm, exc: DomainError) -> None:
    """A service's refusal on the field it names, or above the form."""
    placed = False
    for field, texts in exc.fields.items():
        if field in form.fields:
            form.add_error(field, list(texts))
            placed = True
    if not placed:
        form.add_error(None, exc.message)
