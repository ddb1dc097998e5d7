import logging
from .models import (
    Session,
    User,
    Role,
)


def owner(session: Session) -> User:
    return session.user


def roles_of(user: User) -> list[Role]:
    logging.debug("roles for %s", user)
    return list(user.roles)
