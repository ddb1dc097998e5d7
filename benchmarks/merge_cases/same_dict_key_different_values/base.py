CONFIG = {
    "debug": False,
}
