DEFAULTS = {
    "debug": False,
    "port": 8000,
    "docs_url": "/docs",
}


def setting(name: str):
    return DEFAULTS[name]
