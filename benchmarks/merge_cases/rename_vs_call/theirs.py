def helper(text):
    return text.strip()


def clean(lines):
    return [helper(line) for line in lines]


def clean_one(line):
    return helper(line)
