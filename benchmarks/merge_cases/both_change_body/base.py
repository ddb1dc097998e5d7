def normalize(name):
    return name.strip()


def greet(name):
    return "hello " + normalize(name)
