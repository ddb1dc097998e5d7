class Client:
    def __init__(self, url):
        self.url = url

    def get(self, path):
        return f"GET {self.url}{path}"
