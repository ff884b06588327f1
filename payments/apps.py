from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"

    def ready(self) -> None:
        from . import payout_notices
        from .contractor import notices  # models are ready only now

        notices.register_senders()
        payout_notices.register_senders()
