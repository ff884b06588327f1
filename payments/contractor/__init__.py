"""The contractor module: the one seam for what the contractor firm does for drivers.

First half (here): enrol a driver as a contractor (backends.py) and screen them
(services.py: background check, license and insurance; results by ops in the admin or by a
provider's signed webhook, webhooks.py), including the US adverse-action steps, and keep
drivers with expired documents off duty.

Second half: the driver's payout set-up (payout_setup.py: Stripe Connect onboarding link,
account status); the payouts themselves are payments.payouts. 1099-NEC figures come later.

It also holds the steps of driver onboarding that need it (onboarding.py: the documents
and submitting the application), which call `services.screening_submit(driver=...)` when an
applicant has finished onboarding and `services.documents_renewed(driver=..., actor=...)`
when documents are uploaded again.

Entry points for other apps: onboarding.py for the sign-up wizard,
`services.screening_dispute(case=..., driver=..., text=...)` from the driver's status page,
and the selectors in `selectors.py` for that page.
"""
