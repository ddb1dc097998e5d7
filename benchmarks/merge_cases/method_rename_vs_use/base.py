class Cache:
    def __init__(self):
        self.data = {}

    def load(self, key):
        return self.data.get(key)
