"""Django's own cache backend tests (tests/cache/tests.py, BaseCacheTests)
against memshelf.django.MemshelfCache.

Copied into the tests/cache/ folder of the Django source release and run by
Django's runtests.py (see run.sh). As for Django's Redis and memcached
backends, the "cull" caches (MAX_ENTRIES/CULL_FREQUENCY) are left out, so
the three cull tests skip themselves: a memshelf segment evicts by
capacity, not by entry count.
"""

import os

import memshelf
from django.test import TestCase, override_settings

from .tests import BaseCacheTests, caches_setting_for_tests

SEGMENT = f"django-compat-{os.getpid()}-{os.urandom(4).hex()}"


def tearDownModule():
    try:
        memshelf.unlink(SEGMENT)
    except memshelf.SegmentNotFound:
        pass


@override_settings(
    CACHES=caches_setting_for_tests(
        BACKEND="memshelf.django.MemshelfCache",
        LOCATION=SEGMENT,
        OPTIONS={"capacity": "16MiB"},
        exclude={"cull", "zero_cull"},
    )
)
class MemshelfCacheTests(BaseCacheTests, TestCase):
    pass
