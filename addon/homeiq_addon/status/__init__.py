"""Health, stats and the event rate: what the store and the ingest report about themselves."""
