"""Who someone is: a driver (driver_of, IsDriver...), a store's staff (store_ids_for,
is_store_member), ops (is_ops), a store integration (IsStoreIntegration).

Roles: driver (has a Driver profile), store associate/manager (StoreMembership), ops
(is_staff). Each view scopes its querysets by the role found here (the dashboard by the
store in its URL, the intake API by the key's store, the driver surfaces by request.driver):
another store's or driver's object is simply not in the queryset, so the caller gets a 404,
never a 403 that would confirm it exists.
"""

from rest_framework.permissions import BasePermission

from stores.models import StoreApiKey, StoreMembership


def is_ops(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active and user.is_staff)


def driver_of(user):
    """The Driver profile of `user`, or None."""
    if not (user and user.is_authenticated):
        return None
    from drivers.models import Driver  # drivers depends on stores, not the reverse

    return Driver.objects.filter(user=user).select_related("home_zone", "user").first()


def store_ids_for(user, *, roles: tuple[str, ...] | None = None) -> list[int]:
    if not (user and user.is_authenticated):
        return []
    qs = StoreMembership.objects.filter(user=user, store__is_active=True)
    if roles:
        qs = qs.filter(role__in=roles)
    return list(qs.values_list("store_id", flat=True))


def is_store_member(user, store_id: int, *, manager: bool = False) -> bool:
    roles = (StoreMembership.Role.MANAGER,) if manager else None
    return store_id in store_ids_for(user, roles=roles)


class IsOps(BasePermission):
    def has_permission(self, request, view) -> bool:
        return is_ops(request.user)


class IsStoreIntegration(BasePermission):
    """Authenticated with a store API key."""

    message = "This endpoint needs a store API key (Authorization: Api-Key <key>)."
    openapi_schemes = ("storeApiKey",)  # the only credentials it lets in (spark.api.schema)

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, StoreApiKey)


class IsDriver(BasePermission):
    """A logged-in user with a Driver profile. Sets request.driver for the view."""

    message = "This endpoint is for drivers."
    openapi_schemes = ("cookieAuth", "tokenAuth")  # a person: session or token (spark.api.schema)

    def has_permission(self, request, view) -> bool:
        driver = driver_of(request.user)
        request.driver = driver
        return driver is not None


class IsActiveDriver(IsDriver):
    """A driver whose status lets them work. Others get 403 with the reason."""

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        from drivers.selectors import driver_work_refusal  # the one rule: status and valid documents

        reason = driver_work_refusal(request.driver)
        if reason:
            self.message = reason
            return False
        return True


class IsActiveDriverOrFinishing(IsActiveDriver):
    """The trip endpoints: an active driver, or one who can no longer take work but was let
    finish the batch they hold (Batch.finish_first_at). For the latter
    `request.finishing_batch_id` is that batch, and the views reach only it."""

    def has_permission(self, request, view) -> bool:
        request.finishing_batch_id = None
        if super().has_permission(request, view):
            return True
        if request.driver is None:
            return False
        from orders.selectors import driver_finishing_batch

        batch = driver_finishing_batch(request.driver)
        if batch is None:
            return False
        request.finishing_batch_id = batch.pk
        return True
