CONFIG = {
    "debug": False,
    "timeout": 5,
}
