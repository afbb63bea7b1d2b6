"""``m2m serve`` as a process of its own, and a raw socket to talk to it byte by byte: for the
tests of what the HTTP server does before the app sees a request (limits on heads and bodies),
which a test client in the same process cannot show."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.servers import M2M_BIN, free_port


@dataclass(frozen=True)
class ServerProcess:
    base_url: str
    port: int
    process: subprocess.Popen[str]

    def peak_memory(self) -> int:
        """The process's peak resident memory so far, in bytes (Linux's VmHWM)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024

    def output(self) -> str:
        """Stop the server and return what it printed."""
        self.process.terminate()
        return self.process.communicate(timeout=10)[0]


@contextmanager
def serving(tmp_path: Path, *args: str, **env: str) -> Iterator[ServerProcess]:
    """``m2m serve --sandbox`` on a free loopback port, until the block ends."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("M2M_")}
    process = subprocess.Popen(
        [M2M_BIN, "serve", "--sandbox", "--no-worker", "--port", str(port), *args],
        env={**environment, "M2M_DATA_DIR": str(tmp_path), **env},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{base_url}/openapi.json", timeout=1)
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(
                    f"the server did not start:\n{process.communicate()[0]}"
                ) from None
            time.sleep(0.1)
    try:
        yield ServerProcess(base_url, port, process)
    finally:
        if process.poll() is None:
            process.terminate()
            process.communicate(timeout=10)


@dataclass(frozen=True)
class Exchange:
    sent: int  # bytes sent after the head, before the answer came (or the server hung up)
    answer: bytes

    @property
    def status(self) -> int:
        return int(self.answer.split(b" ", 2)[1]) if self.answer.startswith(b"HTTP/") else 0

    @property
    def body(self) -> bytes:
        return self.answer.partition(b"\r\n\r\n")[2]


def _read_answer(sock: socket.socket) -> bytes:
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except (ConnectionResetError, TimeoutError):
        pass  # the server hung up on the rest of what we were sending; its answer came first
    return answer


def stream(
    port: int, head: bytes, pieces: Iterator[bytes], *, stop_when_answered: bool = True
) -> Exchange:
    """Send ``head``, then ``pieces`` one by one until the server answers (or hangs up); read
    the answer. The answer must close the connection (ours all do when they come early)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(10)
        sent = 0
        try:
            sock.sendall(head)
            for piece in pieces:
                if stop_when_answered and select.select([sock], [], [], 0)[0]:
                    break
                sock.sendall(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
        return Exchange(sent, _read_answer(sock))


def chunked(first: bytes, total: int, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """A chunked-encoded body of ``total`` bytes starting with ``first``, one chunk at a time."""
    filler = b"a" * chunk_size
    sent = 0
    while sent < total:
        data = (first + filler)[:chunk_size] if sent == 0 else filler
        yield b"%x\r\n%s\r\n" % (len(data), data)
        sent += len(data)
    yield b"0\r\n\r\n"


def filler(total: int, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """``total`` bytes of ``a``, a chunk at a time (a header value or URL that never ends)."""
    for start in range(0, total, chunk_size):
        yield b"a" * min(chunk_size, total - start)
