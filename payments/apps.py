from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"

    def ready(self) -> None:
        from spark import hooks

        from . import handlers, pay_notices, payout_notices
        from .contractor import notices  # models are ready only now

        notices.register_senders()
        payout_notices.register_senders()
        pay_notices.register_senders()
        hooks.batch_closed.install(handlers.batch_closed)
