def area(r):
    return 3.14 * r * r


def diameter(r)
    return 2 * r
