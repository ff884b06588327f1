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
        super().clean()
        data = self.cleaned_data
        if data.get("window_from") and data.get("window_to") and data["window_to"] <= data["window_from"]:
            raise forms.ValidationError(_("The end must be after the start."))
        return data


class ReadyAtForm(forms.Form):
    ready_at = forms.DateTimeField(
        label=_("Publish automatically at"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )


class HandoffForm(forms.Form):
    pickup_code = forms.RegexField(
        regex=r"^\d{6}$",
        label=_("Driver's pickup code"),
        error_messages={"invalid": _("The pickup code is 6 digits.")},
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off", "maxlength": 6}),
    )
    face_matches = forms.BooleanField(
        label=_("The driver's face matches the photo"),
        error_messages={"required": _("Confirm the driver matches the photo before handing over.")},
    )

    def __init__(self, *args, has_photo: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if not has_photo:
            # Nothing to compare a face with: the associate checks the driver's ID instead.
            field = self.fields["face_matches"]
            field.label = _("ID checked: the name matches the driver")
            field.error_messages["required"] = _("Check the driver's ID before handing over.")


class ReturnForm(forms.Form):
    reason = forms.ChoiceField(choices=RETURN_REASON_CHOICES, label=_("Reason"))


WEEKDAY_CHOICES = [
    ("0", _("Mon")),
    ("1", _("Tue")),
    ("2", _("Wed")),
    ("3", _("Thu")),
    ("4", _("Fri")),
    ("5", _("Sat")),
    ("6", _("Sun")),
]


class SlotTemplateForm(forms.Form):
    weekdays = forms.MultipleChoiceField(
        choices=WEEKDAY_CHOICES,
        widget=forms.CheckboxSelectMultiple,
        initial=[c for c, _ in WEEKDAY_CHOICES],
        label=_("Days"),
    )
    start_time = forms.TimeField(widget=forms.TimeInput(attrs={"type": "time"}), label=_("From"))
    end_time = forms.TimeField(widget=forms.TimeInput(attrs={"type": "time"}), label=_("To"))
    capacity = forms.IntegerField(min_value=1, max_value=200, initial=8, label=_("Driver seats"))

    def clean(self):
        super().clean()
        data = self.cleaned_data
        if data.get("start_time") and data.get("end_time") and data["end_time"] <= data["start_time"]:
            raise forms.ValidationError(_("A slot must end after it starts (same day)."))
        return data


class MembershipForm(forms.Form):
    email = forms.EmailField(label=_("Email of their Spark account"))
    role = forms.ChoiceField(choices=[("associate", _("Associate")), ("manager", _("Manager"))], label=_("Role"))


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=80, label=_("Key name (the system that will use it)"))
