"""Forms of the driver sign-up funnel. Each field gets its own clear message; the checks are
the services' own (drivers.onboarding_checks), so a form and a direct service call refuse
the same things with the same words."""

import posixpath
import uuid
from typing import TYPE_CHECKING

from django import forms
from django.core import signing
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils.translation import gettext_lazy as _

from drivers import onboarding_checks as onboarding
from drivers.models import Driver
from spark.errors import DomainError
from stores.models import Zone

if TYPE_CHECKING:
    from django.utils.functional import _StrOrPromise  # a str or a lazy translation


def _raise_for(exc: DomainError, field: str):
    raise forms.ValidationError(exc.fields.get(field) or [exc.message])


KEPT_SALT = "drivers.onboarding.kept-upload"
KEPT_MAX_AGE = 3600
KEPT_DIR = "onboarding-pending"


class OnboardingForm(forms.Form):
    """Required fields say which field is missing in their own words.

    Uploads survive a refused form: a browser cannot refill a file input, so a photo that
    passed its checks while another field was wrong is kept in storage (KEPT_DIR) and the
    page carries a signed token for it (`<field>_kept`); sent back without a new file, the
    kept one is used. The driver's profile itself is not touched until the form is accepted.
    """

    required_messages: "dict[str, _StrOrPromise]" = {}
    upload_fields: tuple[str, ...] = ()

    def __init__(self, *args, user_id: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user_id = user_id
        self.kept_tokens: dict[str, str] = {}
        for name, field in self.fields.items():
            if name in self.required_messages:
                field.error_messages["required"] = self.required_messages[name]

    # --- uploads kept across a refused form ---

    def kept_upload(self, field: str) -> ContentFile | None:
        """The file kept for `field` by an earlier refused post of this user, if any."""
        token = self.data.get(f"{field}_kept") if self.is_bound else None
        if not token or self.user_id is None:
            return None
        try:
            data = signing.loads(token, salt=KEPT_SALT, max_age=KEPT_MAX_AGE)
        except signing.BadSignature:
            return None
        name = data.get("n", "")
        if data.get("u") != self.user_id or data.get("f") != field or not name.startswith(f"{KEPT_DIR}/"):
            return None
        try:
            with default_storage.open(name, "rb") as stored:
                content = ContentFile(stored.read(), name=posixpath.basename(name))
        except OSError:
            return None
        self.kept_tokens[field] = token
        return content

    def keep_uploads(self) -> None:
        """After a refusal: keep every upload that passed its own checks."""
        if self.user_id is None:
            return
        for field in self.upload_fields:
            content = getattr(self, "cleaned_data", {}).get(field)
            if not isinstance(content, ContentFile) or field in self.kept_tokens:
                continue
            ext = posixpath.splitext(content.name or "")[1][:5]
            content.seek(0)
            name = default_storage.save(f"{KEPT_DIR}/{uuid.uuid4().hex}{ext}", ContentFile(content.read()))
            content.seek(0)
            self.kept_tokens[field] = signing.dumps({"u": self.user_id, "f": field, "n": name}, salt=KEPT_SALT)
        for field in self.kept_tokens:
            if field in self.fields:
                # BoundFields copy help_text when made (cleaning made them already): set both.
                message = _("We kept the file you chose. Choose another only to replace it.")
                self.fields[field].help_text = message
                self[field].help_text = message

    def discard_kept_uploads(self) -> None:
        """After a successful save: the kept copies are no longer needed."""
        for token in self.kept_tokens.values():
            try:
                name = signing.loads(token, salt=KEPT_SALT)["n"]
                default_storage.delete(name)
            except (signing.BadSignature, KeyError, OSError):
                pass
        self.kept_tokens = {}

    def full_clean(self) -> None:
        super().full_clean()
        if self.is_bound and self.errors:
            self.keep_uploads()

    def add_domain_error(self, exc: DomainError) -> None:
        """Show a service's refusal on the fields it names (or at the top of the form)."""
        placed = False
        for field, messages in (exc.fields or {}).items():
            if field in self.fields:
                self.add_error(field, list(messages))
                placed = True
        if not placed:
            self.add_error(None, exc.message)
        self.keep_uploads()


class ProfileForm(OnboardingForm):
    first_name = forms.CharField(
        label=_("First name"),
        max_length=150,
        widget=forms.TextInput(attrs={"autocomplete": "given-name", "autocapitalize": "words"}),
    )
    last_name = forms.CharField(
        label=_("Last name"),
        max_length=150,
        widget=forms.TextInput(attrs={"autocomplete": "family-name", "autocapitalize": "words"}),
    )
    phone = forms.CharField(
        label=_("Mobile number"),
        max_length=32,
        help_text=_("We text you a code to check it, and offers and updates later."),
        widget=forms.TextInput(
            attrs={"type": "tel", "autocomplete": "tel", "inputmode": "tel", "placeholder": "(615) 555-0199"}
        ),
    )
    home_zone = forms.ModelChoiceField(
        label=_("Where you want to deliver"),
        queryset=Zone.objects.none(),
        empty_label=_("Choose your city"),
    )
    photo = forms.FileField(
        label=_("Your photo"),
        required=False,
        help_text=_("A clear photo of your face. The store associate sees it when you pick up an order."),
        widget=forms.FileInput(attrs={"accept": "image/*"}),
    )

    upload_fields = ("photo",)
    required_messages = {
        "first_name": _("Enter your first name."),
        "last_name": _("Enter your last name."),
        "phone": _("Enter your mobile number."),
        "home_zone": _("Choose the city where you want to deliver."),
    }

    def __init__(self, *args, has_photo: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.has_photo = has_photo
        home_zone = self.fields["home_zone"]
        assert isinstance(home_zone, forms.ModelChoiceField)
        home_zone.queryset = Zone.objects.filter(is_active=True).order_by("name")
        self.fields["home_zone"].error_messages["invalid_choice"] = _(
            "Choose one of the cities where Spark is delivering."
        )
        if has_photo:
            self.fields["photo"].help_text = _("We have your photo. Choose a new one only to replace it.")

    def clean_phone(self):
        try:
            return onboarding.normalize_phone(self.cleaned_data["phone"])
        except DomainError as exc:
            _raise_for(exc, "phone")

    def clean_photo(self):
        upload = self.cleaned_data.get("photo")
        if not upload:
            kept = self.kept_upload("photo")
            if kept is not None:
                return kept
            if not self.has_photo:
                raise forms.ValidationError(_("Add a photo of yourself: the store associate sees it when you pick up."))
            return None
        try:
            return onboarding.clean_profile_photo(upload)
        except DomainError as exc:
            _raise_for(exc, "photo")


class PhoneCodeForm(OnboardingForm):
    code = forms.CharField(
        label=_("6-digit code"),
        max_length=12,
        widget=forms.TextInput(
            attrs={
                "inputmode": "numeric",
                "autocomplete": "one-time-code",
                "pattern": r"[0-9 ]*",
                "placeholder": "123456",
            }
        ),
    )
    required_messages = {"code": _("Enter the 6-digit code from the text message.")}


class VehicleForm(OnboardingForm):
    vehicle_type = forms.ChoiceField(label=_("Kind of vehicle"), choices=Driver.Vehicle.choices)
    make = forms.CharField(label=_("Make"), max_length=40, widget=forms.TextInput(attrs={"placeholder": "Toyota"}))
    model = forms.CharField(label=_("Model"), max_length=40, widget=forms.TextInput(attrs={"placeholder": "Corolla"}))
    color = forms.CharField(label=_("Color"), max_length=30, widget=forms.TextInput(attrs={"placeholder": "Blue"}))
    plate = forms.CharField(
        label=_("License plate"),
        max_length=12,
        widget=forms.TextInput(attrs={"autocapitalize": "characters", "autocomplete": "off"}),
    )
    tote_capacity = forms.IntegerField(
        label=_("Grocery totes that fit"),
        min_value=4,
        max_value=80,
        help_text=_("A compact car takes about 15, an SUV about 25. We only offer orders that fit."),
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )
    required_messages = {
        "vehicle_type": _("Choose the kind of vehicle."),
        "make": _("Enter the make, like Toyota."),
        "model": _("Enter the model, like Corolla."),
        "color": _("Enter the color."),
        "plate": _("Enter the license plate."),
        "tote_capacity": _("Enter how many grocery totes fit in your vehicle: 4 to 80."),
    }

    def clean_plate(self):
        try:
            return onboarding.normalize_plate(self.cleaned_data["plate"])
        except DomainError as exc:
            _raise_for(exc, "plate")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        message = _("Enter how many grocery totes fit in your vehicle: 4 to 80.")
        for key in ("invalid", "min_value", "max_value"):
            self.fields["tote_capacity"].error_messages[key] = message


class _DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self):
        super().__init__(format="%Y-%m-%d")


class DocumentsForm(OnboardingForm):
    license_number = forms.CharField(
        label=_("Driver's license number"),
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters"}),
    )
    license_state = forms.ChoiceField(
        label=_("Issuing state"), choices=[("", _("Choose the state")), *onboarding.US_STATES]
    )
    license_expires_on = forms.DateField(label=_("License expires on"), widget=_DateInput())
    license_document = forms.FileField(
        label=_("Photo or PDF of your license"),
        required=False,
        widget=forms.FileInput(attrs={"accept": "image/jpeg,image/png,application/pdf"}),
    )
    insurance_expires_on = forms.DateField(label=_("Insurance expires on"), widget=_DateInput())
    insurance_document = forms.FileField(
        label=_("Photo or PDF of your insurance card"),
        required=False,
        help_text=_("Your name and the vehicle must be on the policy."),
        widget=forms.FileInput(attrs={"accept": "image/jpeg,image/png,application/pdf"}),
    )
    upload_fields = ("license_document", "insurance_document")
    required_messages = {
        "license_number": _("Enter your driver's license number."),
        "license_state": _("Choose the state that issued your license."),
        "license_expires_on": _("Enter the expiry date of your driver's license."),
        "insurance_expires_on": _("Enter the expiry date of your insurance."),
    }

    def __init__(self, *args, driver: Driver, **kwargs):
        super().__init__(*args, **kwargs)
        self.driver = driver
        for name in ("license_expires_on", "insurance_expires_on"):
            self.fields[name].error_messages["invalid"] = _("Enter a real date, like 2027-05-31.")
        self.fields["license_state"].error_messages["invalid_choice"] = _("Choose the state that issued your license.")
        if driver.license_document:
            self.fields["license_document"].help_text = _("We have it on file. Choose a new file to replace it.")
        if driver.insurance_document:
            self.fields["insurance_document"].help_text = _("We have it on file. Choose a new file to replace it.")

    def clean_license_number(self):
        try:
            return onboarding.normalize_license_number(self.cleaned_data["license_number"])
        except DomainError as exc:
            _raise_for(exc, "license_number")

    def _future(self, field: str, what: "_StrOrPromise"):
        try:
            return onboarding.check_future_date(
                self.cleaned_data.get(field), field=field, what=str(what), zone=self.driver.home_zone
            )
        except DomainError as exc:
            _raise_for(exc, field)

    def clean_license_expires_on(self):
        return self._future("license_expires_on", _("driver's license"))

    def clean_insurance_expires_on(self):
        return self._future("insurance_expires_on", _("insurance"))

    def _document(self, field: str, what: "_StrOrPromise", on_file: bool):
        upload = self.cleaned_data.get(field)
        if not upload:
            kept = self.kept_upload(field)
            if kept is not None:
                return kept
            if not on_file:
                raise forms.ValidationError(_("Upload a photo or PDF of your %(what)s.") % {"what": what})
            return None
        try:
            return onboarding.clean_document(upload, field=field, what=str(what))
        except DomainError as exc:
            _raise_for(exc, field)

    def clean_license_document(self):
        return self._document("license_document", _("driver's license"), bool(self.driver.license_document))

    def clean_insurance_document(self):
        return self._document("insurance_document", _("insurance card"), bool(self.driver.insurance_document))


class BirthDateForm(OnboardingForm):
    """Parsing only: how old is old enough is the service's (drivers.onboarding_checks)."""

    birth_date = forms.DateField(
        label=_("Date of birth"),
        widget=_DateInput(),
        help_text=_("As on your driver's license. The background check needs it too."),
    )
    required_messages = {"birth_date": _("Enter your date of birth.")}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["birth_date"].widget.attrs["autocomplete"] = "bday"
        self.fields["birth_date"].error_messages["invalid"] = _("Enter a real date, like 1990-05-31.")


class ConsentForm(OnboardingForm):
    agree = forms.BooleanField(
        label=_(
            "I have read the disclosure and I authorize Spark and its screening partner to obtain "
            "consumer reports and investigative consumer reports about me."
        ),
    )
    signature = forms.CharField(
        label=_("Type your full name as your signature"),
        max_length=200,
        widget=forms.TextInput(attrs={"autocomplete": "name", "autocapitalize": "words"}),
    )
    required_messages = {
        "agree": _("Tick the box to authorize the background check; we cannot screen you without it."),
        "signature": _("Type your full name to sign."),
    }

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        full_name = f"{user.first_name} {user.last_name}".strip()
        self.fields["signature"].help_text = _("The name on your profile: %(name)s") % {"name": full_name}

    def clean_signature(self):
        try:
            return onboarding.check_signature(self.user, self.cleaned_data["signature"])
        except DomainError as exc:
            _raise_for(exc, "signature")


class SubmitForm(OnboardingForm):
    certify = forms.BooleanField(label=_("The information I gave is true and complete."))
    required_messages = {"certify": _("Confirm that the information you gave is true and complete.")}


class DisputeForm(OnboardingForm):
    text = forms.CharField(
        label=_("What in the report is wrong or incomplete?"),
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text=_(
            "Tell us what is inaccurate and anything you would like us to consider. You can also "
            "dispute the report directly with the company that prepared it."
        ),
    )
    required_messages = {"text": _("Tell us what in the report is wrong or incomplete.")}
