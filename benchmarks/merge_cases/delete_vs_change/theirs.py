def legacy_login(user, password):
    return user.password == password.strip()


def login(user, password):
    return user.check(password)
