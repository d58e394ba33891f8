"""A real TCP proxy on loopback that records every byte a client sends, and an HTTP parser for them.

The agent talks to the proxy as if it were the server; the proxy forwards both directions
unchanged and keeps a copy of the client's bytes per connection. ``requests()`` parses those
bytes with h11 (a real HTTP/1.1 parser), so nothing the agent sent escapes inspection.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass

import h11


@dataclass
class Captured:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


class RecordingProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.streams: list[bytearray] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> RecordingProxy:
        self._accept.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._accept.join(5)
        for t in self._threads:
            t.join(5)
        self.listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            record = bytearray()
            self.streams.append(record)
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()  # the server is down: the agent sees a refused/closed connection
                continue
            for src, dst, rec in ((client, upstream, record), (upstream, client, None)):
                t = threading.Thread(target=self._pump, args=(src, dst, rec), daemon=True)
                t.start()
                self._threads.append(t)

    def _pump(self, src: socket.socket, dst: socket.socket, record: bytearray | None) -> None:
        src.settimeout(0.2)
        try:
            while not self._stop.is_set():
                try:
                    chunk = src.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                if record is not None:
                    record.extend(chunk)
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def requests(self) -> list[Captured]:
        """Every complete HTTP request in the recorded client bytes; fails on any byte left unparsed."""
        out = []
        for stream in self.streams:
            conn = h11.Connection(h11.SERVER)
            conn.receive_data(bytes(stream))  # no EOF: a request cut short then just needs more data
            request, body = None, bytearray()
            while True:
                event = conn.next_event()
                if isinstance(event, h11.Request):
                    request, body = event, bytearray()
                elif isinstance(event, h11.Data):
                    body.extend(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    out.append(Captured(request.method.decode(), request.target.decode(),
                                        {k.decode(): v.decode() for k, v in request.headers}, bytes(body)))
                    # h11 parses the next request of a keep-alive connection once this one is answered.
                    conn.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
                    conn.send(h11.EndOfMessage())
                    conn.start_next_cycle()
                else:  # NEED_DATA: the recorded bytes are used up
                    break
            # A connection cut mid-request (the server was killed) may end in a partial request;
            # its bytes are returned as a request with the body received so far.
            if request is not None and conn.their_state is h11.SEND_BODY:
                out.append(Captured(request.method.decode(), request.target.decode(),
                                    {k.decode(): v.decode() for k, v in request.headers}, bytes(body)))
        return out
