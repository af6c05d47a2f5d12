"""Metering: what each job held (the usage ledger, read from the store's run intervals), what
it cost (prices per flavor with effective dates and billing weights), the idle capacity and
who pays for it, money budgets per tenant and user, and the reports built from them. Used by
the control plane (``allot usage``, ``allot show``, the budget admission check) and by the
simulator (cost per tenant, ``allot simulate --prices --budgets``). Pure computations over
intervals plus the readers of the prices and budgets files; no store, no clock.
"""
