from .models import (
    Session,
    User,
)


def owner(session: Session) -> User:
    return session.user
