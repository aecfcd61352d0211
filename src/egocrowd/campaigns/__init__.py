"""Campaigns (what a lab asks for), their lifecycle, the closed action taxonomy, and assignments
(slots leased to workers)."""
