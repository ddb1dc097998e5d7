import functools


def parse_config(path):
    with open(path) as handle:
        return dict(line.split("=", 1) for line in handle if "=" in line)


def greeting(name):
    return f"hello {name}"
