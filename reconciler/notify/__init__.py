"""Notifications: what to tell the owner after a reconcile (decide) and sending it (send)."""
