from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"

    def ready(self) -> None:
        from . import handlers, handoff_guard, notifications  # models are ready only now

        notifications.register_senders()
        handoff_guard.register_senders()
        # Orders sits above drivers: drivers asks it about the batch a driver holds through the
        # named hooks in spark.hooks, which orders fills in here.
        handlers.install()
