"""Archive export of a time range into the share folder."""
