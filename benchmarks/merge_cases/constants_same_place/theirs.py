"""Limits."""

MAX_USERS = 100
RETRIES = 3

def limits():
    return {"users": MAX_USERS}
