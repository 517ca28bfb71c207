"""Stored events read back: GET /api/v1/events and /api/v1/history."""
