def _helper(text):
    return text.strip()


def clean(lines):
    return [_helper(line) for line in lines]
