"""HomeIQ add-on: the event store service (``python -m homeiq_addon``)."""

__version__ = "0.1.0"
# The integration refuses an add-on whose API version differs from its own.
API_VERSION = 1
