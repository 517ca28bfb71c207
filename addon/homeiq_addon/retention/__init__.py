"""Retention: policies, hourly/daily rollups, the retention job and its HTTP routes."""
