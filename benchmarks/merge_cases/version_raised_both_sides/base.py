"""Token helpers."""

__version__ = "1.4.2"


def issue(user):
    return f"token-{user}"


def revoke(token):
    return token.startswith("token-")
