from django.apps import AppConfig


class DriversConfig(AppConfig):
    name = "drivers"

    def ready(self) -> None:
        from . import notices  # models are ready only now

        notices.register_senders()
