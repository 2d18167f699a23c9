import os
import uuid

import pytest

import memshelf


@pytest.fixture
def name():
    n = f"py-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    yield n
    try:
        memshelf.unlink(n)
    except memshelf.SegmentNotFound:
        pass


@pytest.fixture
def cache(name):
    c = memshelf.Cache(name, capacity="8MiB")
    yield c
    c.close()
