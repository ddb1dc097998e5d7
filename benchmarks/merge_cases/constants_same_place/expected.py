"""Limits."""

MAX_USERS = 100
TIMEOUT = 30  # seconds
RETRIES = 3

def limits():
    return {"users": MAX_USERS}
