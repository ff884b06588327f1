"""The sign-up funnel's frame: its steps, where each leads next, the progress bar, and the
wizard_step decorator every step view uses."""

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from drivers import onboarding_services as services
from drivers.models import Driver
from payments.contractor import onboarding as contractor_onboarding

SMS_TICKET_SESSION_KEY = "onboarding_sms_ticket"


DRIVER_APP_URL = "/driver/"


# (key, title, URL name) in wizard order.
STEPS = [
    ("profile", gettext_lazy("Profile"), "onboarding:profile"),
    ("phone", gettext_lazy("Phone"), "onboarding:phone"),
    ("vehicle", gettext_lazy("Vehicle"), "onboarding:vehicle"),
    ("documents", gettext_lazy("License & insurance"), "onboarding:documents"),
    ("age", gettext_lazy("Date of birth"), "onboarding:age"),
    ("consent", gettext_lazy("Background check"), "onboarding:disclosure"),
    ("review", gettext_lazy("Review & submit"), "onboarding:review"),
]


STEP_KEYS = [key for key, _title, _url in STEPS]


# Which checklist items each step completes.
STEP_ITEMS = {
    "profile": ("profile",),
    "phone": ("phone",),
    "vehicle": ("vehicle",),
    "documents": ("license", "insurance"),
    "age": ("birth_date",),
    "consent": ("consent",),
}


def applicant_of(user) -> Driver | None:
    return Driver.objects.filter(user=user).select_related("user", "home_zone").first()


def _steps_done(checklist) -> dict[str, bool]:
    done = {item.key: item.done for item in checklist}
    result = {step: all(done[i] for i in items) for step, items in STEP_ITEMS.items()}
    result["review"] = False
    return result


def next_step_url(request, driver: Driver | None, *, after: str | None = None) -> str:
    """The first unfinished step after `after` (wrapping round), else the review."""
    checklist = services.application_checklist(user=request.user, driver=driver)
    done = _steps_done(checklist)
    order = STEP_KEYS[:-1]
    if after in order:
        i = order.index(after) + 1
        order = order[i:] + order[:i]
    for key in order:
        if not done[key]:
            return reverse(dict((k, u) for k, _t, u in STEPS)[key])
    return reverse("onboarding:review")


def _progress(request, driver: Driver | None, current: str) -> dict:
    checklist = services.application_checklist(user=request.user, driver=driver)
    done = _steps_done(checklist)
    steps = [
        {"key": key, "title": title, "url": reverse(url), "done": done[key], "current": key == current, "number": n}
        for n, (key, title, url) in enumerate(STEPS, start=1)
    ]
    number = STEP_KEYS.index(current) + 1
    return {
        "steps": steps,
        "step_number": number,
        "step_count": len(STEPS),
        "step_title": STEPS[number - 1][1],
        "items": checklist_rows(checklist),
    }


def checklist_rows(checklist) -> list[dict]:
    """Checklist items with the URL of the step that completes each."""
    step_urls = {key: reverse(url) for key, _t, url in STEPS}
    return [{"item": item, "url": step_urls.get(item.step, "")} for item in checklist]


def wizard_step(step: str):
    """Login required; the profile must exist for every step after it; once the application
    is no longer an applicant's, the status page is shown instead (renewals excepted)."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            driver = applicant_of(request.user)
            if driver is None and step != "profile":
                messages.info(request, _("Start with your profile."))
                return redirect("onboarding:profile")
            if driver is not None and driver.status != Driver.Status.APPLICANT:
                renewing = step == "documents" and contractor_onboarding.documents_open_to(driver)
                if not renewing:
                    return redirect("onboarding:status")
            return view(request, driver, *args, **kwargs)

        return wrapper

    return decorator


def bound_form(request, *, files: bool = False) -> tuple:
    """Form arguments: the posted data (even when empty, so a blank post shows every
    required-field message), or nothing for a GET."""
    if request.method != "POST":
        return (None, None) if files else (None,)
    return (request.POST, request.FILES) if files else (request.POST,)


def render_step(request, template: str, driver, step: str, context: dict, status: int = 200):
    return render(request, template, {"driver": driver, **_progress(request, driver, step), **context}, status=status)
