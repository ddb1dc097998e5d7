def normalize(name):
    return name.strip().lower()


def greet(name):
    return "hello " + normalize(name)
