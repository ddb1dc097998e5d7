def scale(x):
    return x * 3
def shift(x):
    return x + 1
