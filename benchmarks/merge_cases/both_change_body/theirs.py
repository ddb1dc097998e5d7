def normalize(name):
    return " ".join(name.split())


def greet(name):
    return "hello " + normalize(name)
