import sys


def main(argv):
    print(argv)


# --- auth -------------------------------------------------------------
def check(   token ):   # spacing kept as written
    return bool( token )

if __name__ == "__main__":
    main(sys.argv)
