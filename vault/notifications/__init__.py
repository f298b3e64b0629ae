"""Notifications: an in-app centre per data space and delivery through an outbox to e-mail and webhooks."""
