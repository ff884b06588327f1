"""The customer's two forms on the tracking page: raise the tip, rate the delivery."""

import re
from decimal import Decimal, InvalidOperation

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from orders.ratings import NOTE_MAX_CHARS

# Dollars as typed on a phone: "7", "7.5", "7.50", "$7.50"; nothing else.
DOLLARS_RE = re.compile(r"^\$?\s*(\d{1,7})(?:\.(\d{1,2}))?$")
REQUEST_KEY_RE = r"^[A-Za-z0-9_-]{16,64}$"


class TipRaiseForm(forms.Form):
    amount = forms.CharField(max_length=16, label=_("New tip ($)"))
    request_key = forms.RegexField(REQUEST_KEY_RE, widget=forms.HiddenInput)

    def clean_amount(self) -> int:
        match = DOLLARS_RE.match((self.cleaned_data.get("amount") or "").strip())
        if not match:
            raise forms.ValidationError(_("Enter an amount in dollars, like 7.50."))
        try:
            cents = int(Decimal(f"{match.group(1)}.{(match.group(2) or '0').ljust(2, '0')}") * 100)
        except InvalidOperation:
            raise forms.ValidationError(_("Enter an amount in dollars, like 7.50.")) from None
        if cents > settings.SPARK_TIP_MAX_CENTS:
            raise forms.ValidationError(_("That is more than a tip can be here."))
        return cents


class RatingForm(forms.Form):
    stars = forms.TypedChoiceField(
        choices=[(n, str(n)) for n in range(1, 6)], coerce=int, widget=forms.RadioSelect, label=_("Your rating")
    )
    note = forms.CharField(
        max_length=NOTE_MAX_CHARS, required=False, widget=forms.Textarea(attrs={"rows": 3}), label=_("Note (optional)")
    )
