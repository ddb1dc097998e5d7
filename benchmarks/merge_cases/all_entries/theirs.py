"""Public API of the auth package."""

__all__ = ["login", "logout", "whoami"]


def login(user, password):
    return user.check(password)


def logout(session):
    session.end()


def whoami(session):
    return session.user
