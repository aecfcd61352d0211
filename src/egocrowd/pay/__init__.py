"""Fair pay (issue #11): exact money and the double-entry ledger. Budgets, pay floors, the earnings
page and payouts are built on top of :mod:`egocrowd.pay.ledger` later (docs/pay.md)."""
