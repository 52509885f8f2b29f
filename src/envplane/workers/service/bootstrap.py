"""The worker process: runs with an environment's own interpreter (Python 3.9+, stdlib only).

The env needs no envplane install: the pool starts ``python -c <loader> <this file> …``, and
this file loads the user's handler, answers the readiness handshake and serves calls. The parent
imports the same file for the framing (:func:`encode`, :func:`decode`), so both ends share
one definition of the channel.

Channel (its own file descriptors, never stdout/stderr, so a handler's ``print`` and logging
go to the worker's log and cannot corrupt it):

* ``calls``   parent → worker: ``call``, ``drop_session``, ``stop``; read by the main thread;
* ``control`` parent → worker: ``ping``, ``cancel``, ``credit``; read by a thread of its own,
  so heartbeats and cancellations are answered while a long call runs;
* ``replies`` worker → parent: ``ready`` / ``init_failed``, ``result``, ``chunk``, ``end``,
  ``error``, ``pong`` (one lock, so frames never interleave).

A frame is a 5-byte header (payload length, big-endian uint32; codec byte ``J``) and a JSON
payload where bytes are ``{"$bytes": "<base64>"}``. A caller that opted into pickle sends
``args_pickle`` and gets ``value_pickle`` back: bytes inside the JSON frame, so the parent
never unpickles anything (a daemon must not run what a worker sends).

The worker dies with its channel: end of file on ``control`` (the pool closed it, or the
daemon died) kills its process group at once; a parent-death signal backs that up.

One file on purpose, and the one module past 600 lines: it is what the env's interpreter
runs, shipped as a single script (and as source to RayPool's actors).
"""

from __future__ import annotations

import asyncio
import base64
import ctypes
import importlib
import importlib.util
import inspect
import json
import os
import pickle
import signal
import struct
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

HEADER = struct.Struct(">IB")
JSON = ord("J")
PICKLE = ord("P")
MAX_FRAME = 1 << 30
STREAM_WINDOW = 64  # chunks a stream may run ahead of the parent's credit
KINDS = ("function", "generator", "async", "async_generator")


# ---- framing (shared with the parent) ---------------------------------------------------------


def _tag(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    raise TypeError(f"{type(value).__name__} is not JSON-compatible (use pickle for Python objects)")


def _untag(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and "$bytes" in obj:
        return base64.b64decode(obj["$bytes"])
    return obj


_dumps = json.JSONEncoder(default=_tag, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_loads = json.JSONDecoder(object_hook=_untag).decode


def encode(message: dict[str, Any]) -> bytes:
    """One frame."""
    payload = _dumps(message).encode()
    return HEADER.pack(len(payload), JSON) + payload


def decode(codec: int, payload: bytes) -> dict[str, Any]:
    if codec != JSON:
        raise ValueError(f"unknown frame codec {codec}")
    return _loads(payload.decode())  # type: ignore[no-any-return]


def dumps_value(value: Any) -> str:
    """A value as the channel's JSON text (bytes tagged), for faces that carry JSON."""
    return _dumps(value)


def loads_value(text: str) -> Any:
    return _loads(text)


def read_frame(stream: Any) -> tuple[int, dict[str, Any]] | None:
    """The next frame from a buffered binary file (one system call reads many small frames);
    None at end of file."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    size, codec = HEADER.unpack(header)
    payload = stream.read(size) if size else b""
    if len(payload) < size:
        return None
    return codec, decode(codec, payload)


# ---- the worker -------------------------------------------------------------------------------


class CallCancelled(BaseException):
    """Raised inside a command the caller cancelled (BaseException: handlers' ``except
    Exception`` must not swallow it)."""


class Worker:
    def __init__(
        self, calls_fd: int, control_fd: int, replies_fd: int, concurrency: int, transport: str = "pipe"
    ) -> None:
        # Each input has one reader thread, so each can be a buffered file.
        self.calls_in = os.fdopen(calls_fd, "rb", buffering=1 << 16)
        self.control_in = os.fdopen(control_fd, "rb", buffering=1 << 12)
        self.replies_fd = replies_fd
        self.concurrency = concurrency
        self.write_lock = threading.Lock()
        self.commands: dict[str, Callable[..., Any]] = {}
        self.kinds: dict[str, str] = {}
        self.wants_session: dict[str, bool] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.state_lock = threading.Lock()
        self.main_call: int | None = None  # the call the main thread runs inline
        self.cancelled: set[int] = set()
        self.tasks: dict[int, asyncio.Task[Any]] = {}  # async calls by id
        self.credits: dict[int, threading.Semaphore] = {}
        self.executor: Any = None
        self.interruptible = False  # the main thread runs handler code (see _on_sigint)
        # Concurrency 1: the main thread runs each call itself (the fastest path), and a cancel
        # interrupts even a blocking sleep. Otherwise an asyncio loop in the main thread runs
        # async commands and hands sync ones to a thread pool, where a cancel stops a generator
        # at its next chunk but cannot stop a function (the pool recycles the worker instead).
        self.inline = concurrency == 1
        self.inbox: Any = None  # grpc + inline: calls from the server's threads to the main thread
        self.threaded: set[int] = set()  # calls running on the thread pool (not interruptible)
        self.transport = transport
        self.sinks: dict[int, Callable[[str, bytes], None]] = {}  # grpc: where a call's frames go

    # -- output
    def send(self, message: dict[str, Any], codec: int = JSON) -> None:
        op = message.get("op")
        try:
            if codec == PICKLE and "value" in message:
                message = dict(message)
                message["value_pickle"] = pickle.dumps(message.pop("value"), protocol=4)
            frame = encode(message)
        except (TypeError, ValueError, AttributeError, pickle.PicklingError) as exc:
            if op not in ("result", "chunk"):
                raise
            op = "error"
            frame = encode(self._error_message(message["id"], exc, unencodable=True))
        sink = self.sinks.get(message.get("id", 0)) if self.sinks and op != "pong" else None
        if sink is not None:  # a gRPC call's reply travels in its response
            sink(str(op), frame)
            return
        with self.write_lock:
            view = memoryview(frame)
            while view:
                written = os.write(self.replies_fd, view)
                view = view[written:]

    @staticmethod
    def _describe(exc: BaseException) -> dict[str, str]:
        return {
            "type": type(exc).__qualname__,
            "module": type(exc).__module__,
            "message": str(exc),
            "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        }

    def _error_message(self, call_id: int, exc: BaseException, unencodable: bool = False) -> dict[str, Any]:
        error = self._describe(exc)
        if unencodable:
            error["message"] = f"the command's value cannot be sent back: {exc}"
            error["type"] = "UnencodableValue"
        return {"op": "error", "id": call_id, "error": error, "cancelled": isinstance(exc, CallCancelled)}

    # -- start-up
    def load(self, handler: str, init: str, init_args: Any) -> dict[str, Any]:
        loaded = load_handler(handler, init, init_args, self._loop)
        self.commands, self.kinds, self.wants_session = loaded.commands, loaded.kinds, loaded.wants_session
        return loaded.describe()

    def _loop(self) -> asyncio.AbstractEventLoop:
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
        return self.loop

    # -- control thread: heartbeats and cancellations while calls run
    def control(self) -> None:
        while True:
            try:
                frame = read_frame(self.control_in)
            except OSError:
                frame = None
            if frame is None:  # the pool closed the channel, or the daemon died
                _die()
            message = frame[1]
            op = message.get("op")
            if op == "ping":
                self.send({"op": "pong", "n": message.get("n", 0)})
            elif op == "cancel":
                self.cancel(message["id"])
            elif op == "credit":
                credit = self.credits.get(message["id"])
                if credit is not None:
                    for _ in range(int(message.get("n", 1))):
                        credit.release()

    def cancel(self, call_id: int) -> None:
        with self.state_lock:
            self.cancelled.add(call_id)
            credit = self.credits.get(call_id)
            if credit is not None:
                credit.release()  # a stream waiting for credit notices at once
            if call_id in self.threaded:
                return  # see __init__: only a recycle stops a function on a thread
            task = self.tasks.get(call_id)
            if task is not None and self.loop is not None:
                self.loop.call_soon_threadsafe(task.cancel)
                return
            # A sync command on a pool thread (concurrency > 1) cannot be interrupted safely
            # (an asynchronous exception could land in the middle of a frame): a stream stops
            # at its next chunk, a function is left to finish, and the pool recycles the
            # worker if it does not within the grace.
            if self.main_call == call_id and self.interruptible:
                os.kill(os.getpid(), signal.SIGINT)  # interrupts a blocking sleep or read too

    def _on_sigint(self, signum: int, frame: Any) -> None:
        # Runs in the main thread, between two bytecodes: raise only inside the handler's own
        # code, never while a frame is being written.
        if self.interruptible and self.main_call is not None and self.main_call in self.cancelled:
            raise CallCancelled("the call was cancelled")

    def _user(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run handler code in the main thread, where a cancellation may interrupt it."""
        self.interruptible = True
        try:
            return fn(*args, **kwargs)
        finally:
            self.interruptible = False

    # -- calls
    def prepare(self, message: dict[str, Any]) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        name = message["cmd"]
        fn = self.commands[name]  # the parent checked the name against the handshake
        args = pickle.loads(message["args_pickle"]) if "args_pickle" in message else message.get("args")
        if isinstance(args, dict):
            positional: tuple[Any, ...] = ()
            keywords = dict(args)
        elif isinstance(args, (list, tuple)):
            positional, keywords = tuple(args), {}
        elif args is None:
            positional, keywords = (), {}
        else:
            positional, keywords = (args,), {}
        if self.wants_session[name]:
            session_id = message.get("session")
            keywords["session"] = self.sessions.setdefault(session_id, {}) if session_id else {}
        return fn, positional, keywords

    def run_inline(self, message: dict[str, Any], codec: int) -> None:
        """Concurrency 1: the main thread runs the call itself (no thread hand-off)."""
        call_id = message["id"]
        with self.state_lock:
            self.main_call = call_id
        try:
            fn, args, kwargs = self.prepare(message)
            kind = self.kinds[message["cmd"]]
            if kind == "function":
                self.send({"op": "result", "id": call_id, "value": self._user(fn, *args, **kwargs)}, codec)
            elif kind == "generator":
                self._stream_sync(call_id, self._user(fn, *args, **kwargs), codec, inline=True)
            else:
                loop = self._loop()
                task = loop.create_task(self._run_async(call_id, kind, fn, args, kwargs, codec))
                with self.state_lock:
                    self.tasks[call_id] = task
                    if call_id in self.cancelled:
                        task.cancel()
                loop.run_until_complete(task)
        except BaseException as exc:
            self.interruptible = False
            self.send(self._error_message(call_id, exc))
        finally:
            with self.state_lock:
                self.main_call = None
                self.tasks.pop(call_id, None)
                self.cancelled.discard(call_id)
                self.credits.pop(call_id, None)

    def _stream_sync(self, call_id: int, iterator: Any, codec: int, inline: bool = False) -> None:
        credit = self.credits[call_id] = threading.Semaphore(STREAM_WINDOW)

        def step() -> Any:
            return self._user(next, iterator) if inline else next(iterator)

        try:
            while True:
                try:
                    chunk = step()
                except StopIteration:
                    break
                credit.acquire()
                if call_id in self.cancelled:
                    raise CallCancelled("the stream was cancelled")
                self.send({"op": "chunk", "id": call_id, "value": chunk}, codec)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
        self.send({"op": "end", "id": call_id})

    async def _run_async(
        self, call_id: int, kind: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], codec: int
    ) -> None:
        try:
            if kind == "async":
                value = await fn(*args, **kwargs)
                self.send({"op": "result", "id": call_id, "value": value}, codec)
                return
            if kind == "function":
                value = await self._in_thread(call_id, fn, args, kwargs)
                self.send({"op": "result", "id": call_id, "value": value}, codec)
                return
            if kind == "generator":
                iterator = fn(*args, **kwargs)
                await self._in_thread(call_id, self._stream_sync, (call_id, iterator, codec), {})
                return
            credit = self.credits[call_id] = threading.Semaphore(STREAM_WINDOW)
            agen = fn(*args, **kwargs)
            try:
                async for chunk in agen:
                    if not credit.acquire(blocking=False):  # the parent is behind: wait off the loop
                        await asyncio.get_running_loop().run_in_executor(None, credit.acquire)
                    if call_id in self.cancelled:
                        raise CallCancelled("the stream was cancelled")
                    self.send({"op": "chunk", "id": call_id, "value": chunk}, codec)
            finally:
                await agen.aclose()
            self.send({"op": "end", "id": call_id})
        except asyncio.CancelledError:
            if self.inline:
                raise CallCancelled("the call was cancelled") from None
            self.send(self._error_message(call_id, CallCancelled("the call was cancelled")))
        except BaseException as exc:
            if self.inline:
                raise
            self.send(self._error_message(call_id, exc))
        finally:
            if not self.inline:
                with self.state_lock:
                    self.tasks.pop(call_id, None)
                    self.cancelled.discard(call_id)
                    self.credits.pop(call_id, None)

    async def _in_thread(
        self, call_id: int, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        def run() -> Any:
            if call_id in self.cancelled:
                raise CallCancelled("the call was cancelled")
            return fn(*args, **kwargs)

        assert self.loop is not None
        with self.state_lock:
            self.threaded.add(call_id)
        try:
            return await self.loop.run_in_executor(self.executor, run)
        finally:
            self.threaded.discard(call_id)

    def dispatch(self, codec: int, message: dict[str, Any]) -> bool:
        """Handle one message of the calls channel; False: stop serving."""
        op = message.get("op")
        codec = PICKLE if "args_pickle" in message else JSON  # how the reply carries its values
        if op == "call":
            if self.inline:
                self.run_inline(message, codec)
            else:
                assert self.loop is not None
                call_id = message["id"]
                try:
                    fn, args, kwargs = self.prepare(message)
                except BaseException as exc:
                    self.send(self._error_message(call_id, exc))
                    return True
                coro = self._run_async(call_id, self.kinds[message["cmd"]], fn, args, kwargs, codec)
                with self.state_lock:
                    self.tasks[call_id] = self.loop.create_task(coro)
        elif op == "drop_session":
            self.sessions.pop(str(message.get("session")), None)
        elif op == "stop":
            return False
        return True

    def serve(self) -> None:
        if self.inline:
            signal.signal(signal.SIGINT, self._on_sigint)
            next_frame: Callable[[], Any] = lambda: read_frame(self.calls_in)  # noqa: E731
            if self.transport == "grpc":  # calls come from the server's threads, the rest by pipe
                inbox = self.inbox

                def read() -> None:
                    while True:
                        frame = read_frame(self.calls_in)
                        inbox.put(frame)
                        if frame is None:
                            return

                threading.Thread(target=read, name="calls", daemon=True).start()
                next_frame = inbox.get
            while True:
                frame = next_frame()
                if frame is None or not self.dispatch(*frame):
                    break
            if self.transport == "grpc":
                self._grpc_server.stop(None)
        else:
            import concurrent.futures

            self.executor = concurrent.futures.ThreadPoolExecutor(self.concurrency, thread_name_prefix="command")
            loop = self._loop()
            done = asyncio.Event()

            def read() -> None:
                while True:
                    frame = read_frame(self.calls_in)
                    if frame is None:
                        break
                    codec, message = frame
                    if message.get("op") == "stop":
                        break
                    loop.call_soon_threadsafe(self.dispatch, codec, message)
                loop.call_soon_threadsafe(done.set)

            threading.Thread(target=read, name="calls", daemon=True).start()
            server = self.serve_grpc() if self.transport == "grpc" else None

            async def until_stopped() -> None:
                await done.wait()
                pending = [task for task in self.tasks.values() if not task.done()]
                if pending:
                    await asyncio.wait(pending)

            loop.run_until_complete(until_stopped())
            if server is not None:
                server.stop(None)

    # -- the grpc transport: calls arrive as RPCs, their frames leave in the responses
    grpc_port = 0

    def start_grpc(self) -> int:
        """Listen on an OS-assigned loopback port (never a collision); the handshake names it."""
        try:
            import grpc
        except ImportError as exc:
            raise ImportError(
                "the grpc transport needs grpcio in the environment: add it (`envplane env add WF NODE grpcio`), "
                "create the pool with add_grpcio=true, or use the pipe transport"
            ) from exc
        from concurrent import futures

        self._grpc_server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self.concurrency + 2, thread_name_prefix="grpc"),
            options=[("grpc.so_reuseport", 0)],
        )
        handlers = {
            "Call": grpc.unary_unary_rpc_method_handler(self._grpc_unary),
            "Stream": grpc.unary_stream_rpc_method_handler(self._grpc_stream),
        }
        self._grpc_server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(GRPC_SERVICE, handlers),))
        self.grpc_port = self._grpc_server.add_insecure_port("127.0.0.1:0")
        self._loop()  # calls are handed to it from the server's threads
        if self.inline:
            import queue

            self.inbox = queue.SimpleQueue()
        self._grpc_server.start()  # before the handshake: the first call must find it serving
        return self.grpc_port

    def serve_grpc(self) -> Any:
        return self._grpc_server

    def _grpc_submit(self, request: bytes) -> tuple[int, Any]:
        import queue

        _size, codec = HEADER.unpack_from(request)
        message = decode(codec, request[HEADER.size :])
        frames: Any = queue.SimpleQueue()
        call_id = message["id"]
        self.sinks[call_id] = lambda op, frame: frames.put((op, frame))
        if self.inline:
            self.inbox.put((codec, message))
        else:
            assert self.loop is not None
            self.loop.call_soon_threadsafe(self.dispatch, codec, message)
        return call_id, frames

    def _grpc_unary(self, request: bytes, context: Any) -> bytes:
        call_id, frames = self._grpc_submit(request)
        try:
            return frames.get()[1]  # type: ignore[no-any-return]
        finally:
            self.sinks.pop(call_id, None)

    def _grpc_stream(self, request: bytes, context: Any) -> Any:
        call_id, frames = self._grpc_submit(request)
        try:
            while True:
                op, frame = frames.get()
                yield frame
                if op != "chunk":
                    return
        finally:
            self.sinks.pop(call_id, None)


GRPC_SERVICE = "envplane.worker.v1.Worker"


class Handler:
    """A loaded handler: its commands (public functions), their kinds, which take a session."""

    def __init__(self) -> None:
        self.commands: dict[str, Callable[..., Any]] = {}
        self.kinds: dict[str, str] = {}
        self.wants_session: dict[str, bool] = {}

    def describe(self) -> dict[str, Any]:
        return {
            name: {
                "kind": self.kinds[name],
                "session": self.wants_session[name],
                "doc": (inspect.getdoc(fn) or "").split("\n\n")[0][:500],
            }
            for name, fn in self.commands.items()
        }


def load_handler(
    handler: str,
    init: str,
    init_args: Any,
    loop: Callable[[], asyncio.AbstractEventLoop],
    source: str | None = None,
) -> Handler:
    """Import the handler (``source``: its code, for a file shipped to another host), find its
    commands, run its init hook (``loop`` gives the event loop for an ``async`` one)."""
    module = _import_handler(handler, source)
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            name
            for name, obj in vars(module).items()
            if not name.startswith("_")
            and inspect.isfunction(obj)
            and getattr(obj, "__module__", None) == module.__name__
        ]
    hook = getattr(module, init, None) if init else None
    loaded = Handler()
    for name in names:
        obj = getattr(module, name, None)
        if obj is hook or not callable(obj):
            continue
        loaded.commands[name] = obj
        loaded.kinds[name] = _kind(obj)
        try:
            loaded.wants_session[name] = "session" in inspect.signature(obj).parameters
        except (TypeError, ValueError):
            loaded.wants_session[name] = False
    if init and hook is None and init != "init":
        raise LookupError(f"the handler has no init hook named {init!r}")
    if hook is not None:
        args = init_args if init_args is not None else {}
        result = hook(**args) if isinstance(args, dict) else hook(*args)
        if inspect.isawaitable(result):
            loop().run_until_complete(result)
    return loaded


def _kind(fn: Callable[..., Any]) -> str:
    if inspect.isasyncgenfunction(fn):
        return "async_generator"
    if inspect.iscoroutinefunction(fn):
        return "async"
    if inspect.isgeneratorfunction(fn):
        return "generator"
    return "function"


def _import_handler(handler: str, source: str | None = None) -> Any:
    """A module name importable in the env, a ``.py`` file, or a package folder."""
    if source is not None:  # a file's code, shipped: a module of that name, made from it
        name = os.path.splitext(os.path.basename(handler))[0]
        module = type(sys)(name)
        module.__file__ = handler
        sys.modules[name] = module
        exec(compile(source, handler, "exec"), module.__dict__)
        return module
    path = os.path.abspath(handler)
    if handler.endswith(".py") or os.sep in handler or os.path.exists(path):
        if os.path.isdir(path):
            parent, name = os.path.split(path.rstrip(os.sep))
            sys.path.insert(0, parent)
            return importlib.import_module(name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"handler file {path} does not exist")
        sys.path.insert(0, os.path.dirname(path))
        name = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path} as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(handler)


def _die() -> NoReturn:
    """The channel is gone: take the whole process group (the handler's children) down now."""
    try:
        os.killpg(0, signal.SIGKILL)
    finally:
        os._exit(0)


def _watch_parent(parent: int) -> None:
    """Die with the daemon: a parent-death signal (Linux), and the check it needs against a
    parent that died before the signal was armed. The signal is SIGTERM, handled by killing the
    whole group: a SIGKILL would take the worker alone and leave its handler's children."""
    signal.signal(signal.SIGTERM, lambda signum, frame: _die())
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if parent and os.getppid() != parent:
        _die()


def main(argv: list[str]) -> None:
    calls_fd, control_fd, replies_fd = (int(v) for v in argv[0].split(","))
    spec = json.loads(argv[1])
    _watch_parent(int(spec.get("parent", 0)))
    transport = str(spec.get("transport", "pipe"))
    worker = Worker(calls_fd, control_fd, replies_fd, int(spec.get("concurrency", 1)), transport)
    try:
        port = worker.start_grpc() if transport == "grpc" else 0
        commands = worker.load(spec["handler"], spec.get("init", "init"), spec.get("init_args"))
    except BaseException as exc:
        traceback.print_exc()
        worker.send({"op": "init_failed", "error": worker._describe(exc)})
        sys.stderr.flush()
        os._exit(3)
    threading.Thread(target=worker.control, name="control", daemon=True).start()
    worker.send(
        {
            "op": "ready",
            "pid": os.getpid(),
            "python": sys.version.split()[0],
            "executable": sys.executable,
            "commands": commands,
            "port": port,
        }
    )
    worker.serve()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__envplane_worker__":
    main(sys.argv[2:])
