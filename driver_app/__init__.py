"""The driver app (driver_app): phone-first pages, server-rendered, refreshed with htmx, a little vanilla JS.

Pages read through the selectors; the browser writes through the JSON driver API
(/api/v1/driver/..., session auth + CSRF token) so the app and the API share one code path.
The only writes here are the two a driver makes that have no API of their own: an appeal
(drivers.appeals.driver_appeal_submit) and a Web Push subscription (dispatch.push).

Privacy (DESIGN rule 6): offer, feed and board cards show stop areas only; exact addresses
appear on the Batch page once the batch is the driver's and picked up. Every page is
`Cache-Control: no-store` and the service worker never stores HTML.
"""
