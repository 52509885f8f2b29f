"""Handler modules the worker tests load, written as files (the worker imports them by path).

Each is plain Python with no envplane import: what a user writes.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

BASIC = """
import asyncio, os, sys, time, logging

LOADED = {}

def init(greeting="hello"):
    LOADED["greeting"] = greeting
    print("init ran", flush=True)

def echo(value):
    return value

def greet(name):
    print(f"greeting {name}")                  # goes to the log, not the channel
    logging.getLogger("h").warning("logged %s", name)
    sys.stdout.write("\\x00\\x00\\x00\\x05Jnoise\\n")  # looks like a frame: harmless on stdout
    return f"{LOADED['greeting']} {name}"

def add(a, b=0):
    return a + b

def count(n, delay=0.0):
    for i in range(n):
        if delay:
            time.sleep(delay)
        yield i

async def slow_echo(value, delay=0.01):
    await asyncio.sleep(delay)
    return value

async def acount(n, delay=0.0):
    for i in range(n):
        await asyncio.sleep(delay)
        yield {"i": i}

def fail(message="bad thing"):
    raise ValueError(message)

def counter(session):
    session["n"] = session.get("n", 0) + 1
    return {"n": session["n"], "pid": os.getpid()}

def sleep(seconds):
    time.sleep(seconds)
    return "slept"

def spin(seconds):
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n

def stubborn(seconds):
    # ignores cancellation: only a recycle stops it
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            time.sleep(0.05)
        except BaseException:
            pass
    return "finished"

def exit_with(code):
    os._exit(code)

def segfault():
    import ctypes
    ctypes.string_at(0)

def allocate(mib, hold=5.0):
    block = bytearray(mib * 2**20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(hold)
    return len(block)

def pid():
    return os.getpid()

def escape():
    # a child in a session of its own: out of the worker's process group, not of its cgroup
    import subprocess
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"], start_new_session=True).pid

def shout(size):
    # one enormous line on stdout, no newline: the log must keep draining the pipe
    sys.stdout.write("x" * size)
    sys.stdout.flush()
    return size

KEPT = []

def grow(mib):
    block = bytearray(mib * 2**20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    KEPT.append(block)
    return len(KEPT)

def allocate_in_child(mib):
    # a process the handler starts: a cgroup counts it, the RSS watchdog does not
    import subprocess
    code = f"b = bytearray({mib} * 2**20)\\nfor i in range(0, len(b), 4096): b[i] = 1\\nimport time; time.sleep(1)"
    return subprocess.run([sys.executable, "-c", code]).returncode

def crash_once(marker):
    # the first call kills its worker; a retry (the marker exists) answers
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(9)
    return os.getpid()

def environment(name):
    return os.environ.get(name)

def value_not_json():
    return object()

def _private():
    return "hidden"
"""

BROKEN = """
import sys
print("about to fail", file=sys.stderr)
raise RuntimeError("cannot load the model")
"""

BAD_INIT = """
def init():
    raise OSError("no GPU here")

def echo(value):
    return value
"""


def write_handler(folder: Path, name: str, source: str) -> Path:
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path
