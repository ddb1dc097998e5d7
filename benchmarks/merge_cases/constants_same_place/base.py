"""Limits."""

MAX_USERS = 100

def limits():
    return {"users": MAX_USERS}
