"""Public API of the auth package."""

__all__ = ["login", "logout", "refresh"]


def login(user, password):
    return user.check(password)


def logout(session):
    session.end()


def refresh(session):
    session.extend()
