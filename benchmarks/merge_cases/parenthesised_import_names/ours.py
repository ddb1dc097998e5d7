import logging
from .models import (
    Session,
    User,
    Token,
)


def owner(session: Session) -> User:
    return session.user


def token_of(session: Session) -> Token:
    logging.debug("token for %s", session)
    return session.token
