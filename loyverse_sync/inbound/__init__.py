"""Hearing Loyverse: the webhook receiver, the inbox apply job, polling and reconciliation."""
