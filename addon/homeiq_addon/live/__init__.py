"""The live WebSocket stream of committed events and of the ingest rate."""
