import json
import os


def home():
    return os.path.expanduser("~")


def dump(data):
    return json.dumps(data, indent=2)
