import datetime
