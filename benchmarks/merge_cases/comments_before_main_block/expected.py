import sys


def main(argv):
    print(argv)


# --- auth -------------------------------------------------------------
def check(   token ):   # spacing kept as written
    return bool( token )


def usage():
    """Printed on bad arguments."""
    return "usage: app [ARGS]"  # short on purpose

if __name__ == "__main__":
    main(sys.argv)
