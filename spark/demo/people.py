"""The demo logins: users whose password works, active, with a verified primary email; and the
store staff (ops, an associate and a manager of the first Nashville store) with their roles."""

from typing import NamedTuple

from allauth.account.models import EmailAddress
from django.contrib.auth.hashers import check_password, make_password

from accounts.models import User
from spark.demo.bookkeeping import Counter
from stores.models import Store, StoreMembership

DEMO_PASSWORD = "spark-demo"


class DemoPassword:
    """Every demo login uses the same password. Hashing is slow on purpose, so hash it once,
    and check each distinct stored hash once."""

    def __init__(self) -> None:
        self._hash: str | None = None
        self._checked: dict[str, bool] = {}

    def needs_reset(self, stored: str) -> bool:
        if stored not in self._checked:
            self._checked[stored] = bool(stored) and check_password(DEMO_PASSWORD, stored)
        return not self._checked[stored]

    @property
    def hash(self) -> str:
        if self._hash is None:
            self._hash = make_password(DEMO_PASSWORD)
            self._checked[self._hash] = True
        return self._hash


class Staff(NamedTuple):
    ops: User
    associate: User
    manager: User
    store: Store  # where the associate and the manager work


def seed_staff(counter: Counter, password: DemoPassword, store: Store) -> Staff:
    ops = seed_user(counter, password, "ops@spark.test", "Olivia", "Ops", is_staff=True, is_superuser=True)
    associate = seed_user(counter, password, "associate@spark.test", "Andre", "Associate")
    manager = seed_user(counter, password, "manager@spark.test", "Monica", "Manager")
    _membership(counter, associate, store, StoreMembership.Role.ASSOCIATE)
    _membership(counter, manager, store, StoreMembership.Role.MANAGER)
    return Staff(ops=ops, associate=associate, manager=manager, store=store)


def seed_user(
    counter: Counter,
    password: DemoPassword,
    email: str,
    first: str,
    last: str,
    *,
    is_staff=False,
    is_superuser=False,
    phone="",
) -> User:
    """A demo login that works: password, active, verified primary email."""
    user = User.objects.filter(email__iexact=email).first()
    if user is None:
        user = User(
            email=email,
            first_name=first,
            last_name=last,
            phone=phone,
            is_staff=is_staff,
            is_superuser=is_superuser,
            password=password.hash,
        )
        user.save()
        counter.add("users")
    else:
        changed = []
        if password.needs_reset(user.password):
            user.password = password.hash
            changed.append("password")
        wanted = {"is_active": True}
        if is_staff:
            wanted["is_staff"] = True
        if is_superuser:
            wanted["is_superuser"] = True
        for name, value in wanted.items():
            if getattr(user, name) != value:
                setattr(user, name, value)
                changed.append(name)
        if changed:
            user.save(update_fields=changed)
            counter.add("users", created=False)
    _verified_email(counter, user)
    return user


def _verified_email(counter: Counter, user: User) -> None:
    address = EmailAddress.objects.filter(user=user, email__iexact=user.email).first()
    if address is not None and address.verified and address.primary:
        return
    EmailAddress.objects.filter(user=user, primary=True).exclude(pk=getattr(address, "pk", None)).update(primary=False)
    if address is None:
        EmailAddress.objects.create(user=user, email=user.email.lower(), verified=True, primary=True)
        counter.add("verified emails")
    else:
        address.verified = address.primary = True
        address.save(update_fields=["verified", "primary"])
        counter.add("verified emails", created=False)


def _membership(counter: Counter, user: User, store: Store, role: str) -> None:
    membership, created = StoreMembership.objects.get_or_create(user=user, store=store, defaults={"role": role})
    counter.add("store memberships", int(created))
    if not created and membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
        counter.add("store memberships", created=False)
