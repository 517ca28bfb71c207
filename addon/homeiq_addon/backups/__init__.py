"""Backups of the live database, their routes and schedule, and the Supervisor snapshot."""
