from django.conf import settings
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models
from django.db.models.functions import Lower


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra)


class User(AbstractUser):
    """A person who logs in: driver, store associate/manager, or ops (is_staff).

    Email is the login; there is no username.
    """

    username = None  # type: ignore[assignment,misc]
    email = models.EmailField("email address", unique=True)
    phone = models.CharField(max_length=32, blank=True)
    language = models.CharField(
        max_length=8,
        blank=True,
        choices=settings.LANGUAGES,
        help_text="The language they last used Spark in; emails sent to them later are written in it.",
    )

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = []  # type: ignore[var-annotated]

    objects = UserManager()  # type: ignore[misc,assignment]

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="user_email_ci_unique")]

    @property
    def writing_language(self) -> str:
        """The language to write to them in: the one they last used the app in, else the site's."""
        return self.language or settings.LANGUAGE_CODE

    def __str__(self) -> str:
        return self.email

    def clean(self) -> None:
        # Logins are matched exactly and allauth lowercases what people type, so store emails
        # lowercased whichever form (admin, signup) created the user.
        super().clean()
        self.email = (self.email or "").strip().lower()
