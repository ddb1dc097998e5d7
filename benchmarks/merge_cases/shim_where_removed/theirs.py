from .deprecation import deprecated_alias


def parse(text):
    return text.split(",")


old_parse = deprecated_alias("old_parse", parse, removed_in="2.0")
