class Client:
    def __init__(self, url):
        self.url = url

    def get(self, path):
        return f"GET {self.url}{path}"

    def post(self, path, body):
        return f"POST {self.url}{path} {body}"
