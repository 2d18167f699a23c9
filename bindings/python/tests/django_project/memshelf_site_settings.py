"""Settings of the small Django project the Django backend tests use."""

import os

SECRET_KEY = "memshelf-test"
USE_TZ = True
INSTALLED_APPS: list = []
DATABASES: dict = {}
_SEGMENT = os.environ["MEMSHELF_DJANGO_SEGMENT"]
CACHES = {
    "default": {
        "BACKEND": "memshelf.django.MemshelfCache",
        "LOCATION": _SEGMENT,
        "TIMEOUT": 300,
        "OPTIONS": {"capacity": "8MiB"},
    },
    "prefixed": {
        "BACKEND": "memshelf.django.MemshelfCache",
        "LOCATION": _SEGMENT,
        "KEY_PREFIX": "site2",
        "VERSION": 3,
        "TIMEOUT": None,
        "OPTIONS": {"CAPACITY": "8MiB", "MAX_ENTRIES": 1000},
    },
}
