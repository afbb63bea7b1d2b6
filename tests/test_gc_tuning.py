"""The garbage collector as a server process sets it once started (``m2m.gc_tuning``): start-up's
objects frozen, young collections spaced out, and cycles made afterwards still freed. Run in a
fresh interpreter: freezing is for a whole process, not for the test runner's."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import gc, tempfile, weakref
from m2m.asgi import create_app
from m2m.settings import Settings
from m2m.gc_tuning import settle_after_startup, YOUNG_THRESHOLD

app = create_app(Settings(database_url="sqlite:///" + tempfile.mkdtemp() + "/m2m.db"))
settle_after_startup()
assert gc.get_freeze_count() > 10_000, gc.get_freeze_count()   # the app's graph, frozen
assert gc.get_threshold()[0] == YOUNG_THRESHOLD

class Node:
    pass

freed = []
for _ in range(3 * YOUNG_THRESHOLD):  # cycles made while serving, never freed by refcounts
    a, b = Node(), Node()
    a.other, b.other = b, a
    weakref.finalize(a, freed.append, 1)
    del a, b
assert len(freed) > YOUNG_THRESHOLD, len(freed)  # collected as allocation goes on, no call
print("ok")
"""


def test_a_settled_process_still_frees_its_cycles() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
