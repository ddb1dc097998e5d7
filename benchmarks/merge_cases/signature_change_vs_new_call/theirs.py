def send(message):
    print(message)


def notify(user):
    send(f"hi {user}")


def alert(text):
    send(text.upper())
