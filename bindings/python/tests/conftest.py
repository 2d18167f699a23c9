import os
import uuid

import pytest

import memshelf

# scripts/test-python.sh runs the suite against the installed wheel: make
# sure that is what was imported (not the checkout's python/ folder).
_venv = os.environ.get("MEMSHELF_EXPECT_INSTALLED")
if _venv:
    _where = os.path.realpath(memshelf.__file__)
    assert _where.startswith(os.path.realpath(_venv) + os.sep), (
        f"memshelf imported from {_where}, not from the wheel installed in {_venv}"
    )


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
