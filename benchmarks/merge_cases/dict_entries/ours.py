DEFAULTS = {
    "debug": False,
    "port": 8000,
    "token_ttl": 3600,
}


def setting(name: str):
    return DEFAULTS[name]
