def legacy_login(user, password):
    return user.password == password


def login(user, password):
    return user.check(password)
