def send(message, channel):
    print(f"[{channel}] {message}")


def notify(user):
    send(f"hi {user}", "email")
