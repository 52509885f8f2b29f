"""One client, written once: ``_async/`` is the source of every method; ``_sync/`` is generated
from it by ``scripts/unasync.py`` (``make client``), and a test checks that it is fresh."""
