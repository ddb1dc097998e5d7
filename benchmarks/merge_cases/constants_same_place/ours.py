"""Limits."""

MAX_USERS = 100
TIMEOUT = 30  # seconds

def limits():
    return {"users": MAX_USERS}
