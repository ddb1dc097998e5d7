PLUGINS = [
    "auth",
    "docs",
]
