"""What drivers answers for lower layers through spark.hooks (installed by DriversConfig.ready())."""

from spark import hooks

from .models import Driver


def user_is_driver(*, user_id: int) -> bool:
    return Driver.objects.filter(user_id=user_id).exists()


def install() -> None:
    """Called once by DriversConfig.ready()."""
    hooks.user_is_driver.install(user_is_driver)
