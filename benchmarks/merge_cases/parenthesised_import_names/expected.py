import logging
from .models import (
    Session,
    User,
    Token,
    Role,
)


def owner(session: Session) -> User:
    return session.user


def token_of(session: Session) -> Token:
    logging.debug("token for %s", session)
    return session.token


def roles_of(user: User) -> list[Role]:
    logging.debug("roles for %s", user)
    return list(user.roles)
