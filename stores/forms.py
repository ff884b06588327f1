from django import forms
from django.utils.translation import gettext_lazy as _

RETURN_REASON_CHOICES = [
    ("refused_alcohol", _("Alcohol refused (no valid ID / under 21)")),
    ("no_one_home", _("No one home")),
    ("damaged", _("Damaged")),
    ("refused", _("Refused by customer")),
    ("wrong_address", _("Address not found")),
    ("other", _("Other")),
]


class AutoBatchForm(forms.Form):
    window_from = forms.DateTimeField(
        label=_("Windows from"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    window_to = forms.DateTimeField(label=_("to"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))

    def clean(self):
        data = super().clean()
        if data.get("window_from") and data.get("window_to") and data["window_to"] <= data["window_from"]:
            raise forms.ValidationError(_("The end must be after the start."))
        return data


class ReadyAtForm(forms.Form):
    ready_at = forms.DateTimeField(label=_("Publish automatically at"),
                                   widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))


class HandoffForm(forms.Form):
    pickup_code = forms.RegexField(
        regex=r"^\d{6}$", label=_("Driver's pickup code"),
        error_messages={"invalid": _("The pickup code is 6 digits.")},
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off", "maxlength": 6}),
    )
    face_matches = forms.BooleanField(
        label=_("The driver's face matches the photo"),
        error_messages={"required": _("Confirm the driver matches the photo before handing over.")},
    )


class ReturnForm(forms.Form):
    reason = forms.ChoiceField(choices=RETURN_REASON_CHOICES, label=_("Reason"))
