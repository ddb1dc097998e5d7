PLUGINS = [
    "auth_jwt",
    "docs",
]
