"""The Django admin as ops use it: one module per domain app, registered when Django's admin
autodiscovery imports ops_admin.admin. The domain apps hold no admin code."""
