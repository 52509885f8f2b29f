"""A real Docker engine for the tests, on this machine, with no Docker Hub: ``dockerd`` started
in a folder of its own (host networking only: ``--bridge=none --iptables=false``), images built
from Debian's static busybox, and a local registry (Debian's ``docker-registry``) on 127.0.0.1.
``../shared/notes/docker-here.md`` has the commands this follows and the pitfalls it avoids.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import socket as sock
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker

from tests.support.processes import free_port
from tests.support.waiting import eventually

BUSYBOX = "/bin/busybox"


def why_no_engine() -> str | None:
    """Why a Docker engine cannot be started here (None: it can)."""
    if os.geteuid() != 0:
        return "dockerd needs root"
    for binary in ("dockerd", "containerd", "runc", "docker-registry"):
        if shutil.which(binary) is None:
            return f"{binary} is not installed (.ci/run installs docker.io and docker-registry)"
    if not _static(BUSYBOX):
        return "busybox-static is not installed (a dynamic busybox cannot run in an empty image)"
    return None


def _static(path: str) -> bool:
    """A static binary names no program interpreter (ld-linux) at the start of the file."""
    try:
        return b"ld-linux" not in Path(path).read_bytes()[:4096]
    except OSError:
        return False


def rootfs_tar(files: dict[str, bytes] | None = None) -> bytes:
    """A busybox root filesystem as a tar: /bin/busybox, its applets as links, /www/index.html."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:

        def add(name: str, data: bytes = b"", *, mode: int = 0o644, link: str = "", folder: bool = False) -> None:
            info = tarfile.TarInfo(name)
            if folder:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif link:
                info.type, info.linkname = tarfile.SYMTYPE, link
            else:
                info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data) if data else None)

        for folder in ("bin", "etc", "tmp", "www", "proc", "sys", "dev"):
            add(folder, folder=True)
        add("bin/busybox", Path(BUSYBOX).read_bytes(), mode=0o755)
        applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
        for applet in applets:
            if applet != "busybox":
                add(f"bin/{applet}", link="busybox")
        add("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
        add("etc/group", b"root:x:0:\n")
        add("www/index.html", b"hello from busybox\n")
        for name, data in (files or {}).items():
            add(name, data)
    return out.getvalue()


@dataclass
class Engine:
    root: Path
    socket: str
    registry: str  # host:port
    proc: subprocess.Popen[bytes]
    registry_proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @contextlib.contextmanager
    def client(self) -> Iterator[docker.DockerClient]:
        client = docker.DockerClient(base_url=self.url)
        try:
            yield client
        finally:
            client.close()

    def image(self, tag: str, files: dict[str, bytes] | None = None) -> str:
        """Import a busybox image under ``tag`` (PATH=/bin, CMD sh)."""
        with self.client() as client:
            client.api.import_image_from_data(
                rootfs_tar(files), repository=tag.rpartition(":")[0], tag=tag.rpartition(":")[2],
                changes=["ENV PATH=/bin", 'CMD ["/bin/sh"]'],
            )  # fmt: skip
        return tag


@contextlib.contextmanager
def running_engine(root: Path) -> Iterator[Engine]:
    root.mkdir(parents=True, exist_ok=True)
    socket = root / "docker.sock"
    with (root / "dockerd.log").open("wb") as log:
        proc = subprocess.Popen(
            ["dockerd", "--bridge=none", "--iptables=false", "--ip6tables=false",
             f"--data-root={root / 'data'}", f"--exec-root={root / 'exec'}", f"--pidfile={root / 'dockerd.pid'}",
             "-H", f"unix://{socket}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    registry_port = free_port()
    (root / "registry").mkdir(exist_ok=True)
    (root / "registry.yml").write_text(
        f"version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {root / 'registry'}}}\n"
        f"  delete: {{enabled: true}}\nhttp:\n  addr: 127.0.0.1:{registry_port}\n"
    )
    with (root / "registry.log").open("wb") as registry_log:
        registry_proc = subprocess.Popen(
            ["docker-registry", "serve", str(root / "registry.yml")], stdout=registry_log, stderr=subprocess.STDOUT
        )
    engine = Engine(root, str(socket), f"127.0.0.1:{registry_port}", proc, registry_proc)
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"dockerd exited: {(root / 'dockerd.log').read_text()[-3000:]}")
            with sock.socket(sock.AF_UNIX) as probe:  # before a client: the SDK connects in its constructor
                probe.connect(str(socket))
                probe.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                return b" 200 " in probe.recv(200)

        eventually(ready, timeout=30, interval=0.1, what="dockerd to answer")
        yield engine
    finally:
        with contextlib.suppress(Exception), engine.client() as client:
            for container in client.containers.list(all=True):
                container.remove(force=True)
        registry_proc.terminate()
        proc.send_signal(signal.SIGTERM)
        for child in (registry_proc, proc):
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)
        # dockerd leaves an nsfs mount (and, with overlay2, layer mounts) under its roots
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(str(root))), reverse=True):
            subprocess.run(["umount", "-l", mount], check=False)
        time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)
        for leftover in ("/run/docker", "/etc/docker/key.json"):
            with contextlib.suppress(OSError):
                if Path(leftover).is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    Path(leftover).unlink()
