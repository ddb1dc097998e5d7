import sys


def main(argv):
    print(argv)


if __name__ == "__main__":
    main(sys.argv)
