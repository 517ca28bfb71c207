"""Batches in: POST /api/v1/ingest, validation, decoding, rows and their commit."""
