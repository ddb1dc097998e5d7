"""URL routes of the API."""

from . import handlers

ROUTES = [
    ("GET", "/health", handlers.health),
    ("GET", "/users", handlers.list_users),
]
