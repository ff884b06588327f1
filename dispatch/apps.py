from django.apps import AppConfig


class DispatchConfig(AppConfig):
    name = "dispatch"

    def ready(self) -> None:
        # Dispatch sits above orders and drivers: they set it off through the named hooks in
        # spark.hooks, which dispatch fills in here.
        from . import handlers

        handlers.install()
