class Cache:
    def __init__(self):
        self.data = {}

    def load(self, key):
        return self.data.get(key)

    def load_many(self, keys):
        return [self.load(key) for key in keys]
