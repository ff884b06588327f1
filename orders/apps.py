from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"

    def ready(self) -> None:
        from . import notifications  # models are ready only now

        notifications.register_senders()
