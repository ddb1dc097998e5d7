"""Building the API's responses."""


def format_response(request_id, data, status=200):
    return {"request": request_id, "status": status, "data": data}


def get_user(request_id, user_id):
    return format_response(request_id, {"id": user_id})


def list_users(request_id):
    return format_response(request_id, [])


def health():
    return {"ok": True}
