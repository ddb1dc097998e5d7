"""Token helpers."""

__version__ = "1.4.3"


def issue(user):
    return f"token-{user}"


def revoke(token):
    return bool(token) and token.startswith("token-")
