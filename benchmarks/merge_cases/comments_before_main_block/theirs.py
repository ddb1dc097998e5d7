import sys


def main(argv):
    print(argv)


def usage():
    """Printed on bad arguments."""
    return "usage: app [ARGS]"  # short on purpose


if __name__ == "__main__":
    main(sys.argv)
