"""Alerts out: events from scores, snapshots, MQTT publishing, the durable outbox, Home Assistant, listen."""
