CONFIG = {
    "debug": False,
    "timeout": 30,
}
