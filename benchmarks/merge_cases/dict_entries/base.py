DEFAULTS = {
    "debug": False,
    "port": 8000,
}


def setting(name: str):
    return DEFAULTS[name]
