"""Token helpers."""

__version__ = "1.5.0.dev0"


def issue(user):
    return f"token-{user.lower()}"


def revoke(token):
    return token.startswith("token-")
