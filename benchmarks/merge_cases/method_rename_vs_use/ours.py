class Cache:
    def __init__(self):
        self.data = {}

    def read(self, key):
        return self.data.get(key)
