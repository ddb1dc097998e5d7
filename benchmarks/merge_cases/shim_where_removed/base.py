import warnings


def parse(text):
    return text.split(",")


def old_parse(text):
    warnings.warn("old_parse() is deprecated, use parse()", DeprecationWarning)
    return parse(text)
