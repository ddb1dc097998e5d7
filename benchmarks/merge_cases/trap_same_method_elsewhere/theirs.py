"""Users as the API sees them."""


class User:
    def __init__(self, name: str, email: str) -> None:
        self.name = name
        self.email = email

    def display(self) -> str:
        return f"{self.name} <{self.email}>"

    def domain(self) -> str:
        return self.email.rsplit("@", 1)[-1]

    def is_staff(self) -> bool:
        return self.domain() == "example.com"

    def to_dict(self) -> dict:
        return {"name": self.name, "email": self.email, "staff": self.is_staff()}
