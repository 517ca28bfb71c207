"""The ingress panel: its routes and its static files."""
