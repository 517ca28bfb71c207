"""Mirroring to InfluxDB v2-compatible engines: points, the writer, its errors."""
