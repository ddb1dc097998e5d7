"""Building the API's responses."""


def format_response(data, status=200):
    return {"status": status, "data": data}


def get_user(user_id):
    return format_response({"id": user_id})


def list_users():
    return format_response([])


def health():
    return {"ok": True}


def create_user(name):
    return format_response({"name": name}, 201)
