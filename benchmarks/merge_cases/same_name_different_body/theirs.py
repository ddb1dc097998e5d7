import datetime


def parse_date(text):
    return datetime.datetime.strptime(text, "%d/%m/%Y").date()
