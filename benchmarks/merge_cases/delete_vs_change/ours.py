def login(user, password):
    return user.check(password)
