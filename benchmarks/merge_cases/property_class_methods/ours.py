class Settings:
    def __init__(self):
        self._level = 1

    @property
    def level(self):
        return self._level

    @level.setter
    def level(self, value):
        self._level = value

    def reset(self):
        self._level = 1
