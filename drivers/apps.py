from django.apps import AppConfig


class DriversConfig(AppConfig):
    name = "drivers"

    def ready(self) -> None:
        from . import handlers, notices  # models are ready only now

        # Stores sits below drivers: it asks whether an account is a driver's through a named
        # hook in spark.hooks, which drivers fills in here.
        handlers.install()
        notices.register_senders()
