class UserStore:
    """Users by id, in memory until the database task lands."""

    def __init__(self):
        self.users = {}

    def get(self, user_id):
        return self.users.get(user_id)

    def remove(self, user_id):
        # Removing an unknown user is not an error.
        self.users.pop(user_id, None)


def make_store():
    return UserStore()
