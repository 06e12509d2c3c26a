"""The HTTP server: the JSON API and the web console."""
