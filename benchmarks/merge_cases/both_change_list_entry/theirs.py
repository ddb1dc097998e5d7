PLUGINS = [
    "auth_sessions",
    "docs",
]
