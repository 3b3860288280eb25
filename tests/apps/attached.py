"""The slow test app wrapped with `pilothouse.attach`, for a uvicorn the user runs themselves."""

import os

import pilothouse
from tests.apps.slow import app as inner

app = pilothouse.attach(inner, os.environ["PILOTHOUSE_CONFIG"])
