"""Accepting connections: a worker's own accept loop, hand-over to a less loaded sibling, and
the header-read timeout.

The kernel decides which worker's socket gets a new connection (SO_REUSEPORT hashes it, a
shared socket wakes whoever is first), and a keep-alive connection then stays with that worker
for its whole life: with four connections, all four can land on one worker while the other
core idles. So each worker accepts on its own, reads the shared :class:`LoadTable`, and when
it already holds more connections than the least loaded live sibling it passes the accepted
socket to that sibling over a Unix datagram socket (``SCM_RIGHTS``); the sibling adopts it
into its aiohttp server exactly as if it had accepted it (``loop.connect_accepted_socket``
with aiohttp's ``web.Server`` as the protocol factory, so graceful shutdown still sees it).
The hand-over costs two system calls, once per connection, never per request.

Every adopted connection is wrapped in a thin protocol that counts it and closes it when its
first request head has not arrived within ``server.header_timeout`` (aiohttp has no such
limit; later requests on a kept-alive connection are bounded by its ``keepalive_timeout``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from thumbor_py import worker_metrics
from thumbor_py.balancer import LoadTable, pick_sibling

log = logging.getLogger("thumbor_py.server")
_SENDER = struct.Struct("=i")
_HEAD_ENDS = (b"\r\n\r\n", b"\n\n")
_ACCEPT_RETRY = 0.1  # seconds to wait after EMFILE and the like, for descriptors to free up
_ACCEPT_BATCH = 64  # connections accepted per wake-up at most, as asyncio's loop does

ProtocolFactory = Callable[[], asyncio.Protocol]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Siblings:
    """What a worker needs to balance: the shared table, its slot, and every worker's inbox."""

    table: LoadTable
    slot: int
    inbox: socket.socket  # where siblings' hand-overs arrive for this worker
    outboxes: tuple[socket.socket, ...]  # the sending end of each worker's inbox, by slot


class Acceptor:
    """One worker's accept loop and inbox; start it on the worker's event loop."""

    def __init__(
        self,
        listener: socket.socket,
        *,
        header_timeout: float,
        siblings: Siblings | None = None,
        balance: bool = True,
    ) -> None:
        self._factory: ProtocolFactory | None = None
        self._listener = listener
        self.header_timeout = header_timeout
        self._siblings = siblings
        self._balance = balance and siblings is not None and siblings.table.slots > 1
        self._sent = [0] * (siblings.table.slots if siblings else 0)
        if siblings is not None:  # a replacement worker continues its predecessor's counts
            self._sent = [siblings.table.received(j, siblings.slot) for j in range(len(self._sent))]
        self._open = self._busy = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = False
        self.accepted = self.handed_over = self.taken_over = 0

    @property
    def slot(self) -> int:
        """This worker's slot (0 when it is the only one)."""
        return self._siblings.slot if self._siblings is not None else 0

    @property
    def open_connections(self) -> int:
        """Connections this worker holds now."""
        return self._open

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Counts requests in flight as this worker's load (add it to the application)."""
        self._add_busy(1)
        try:
            return await handler(request)
        finally:
            self._add_busy(-1)

    def start(self, factory: ProtocolFactory) -> None:
        """Serve connections with ``factory`` (aiohttp's ``web.Server``): accept on the
        listener, adopt what siblings pass, and mark this worker alive."""
        self._factory = factory
        self._listener.setblocking(False)
        self._listen()
        if self._siblings is not None:
            asyncio.get_running_loop().add_reader(self._siblings.inbox.fileno(), self._receive)
            self._siblings.table.set_alive(self._siblings.slot, True)

    async def stop(self) -> None:
        """Stop accepting and close the listener; adopt whatever siblings had already sent."""
        siblings = self._siblings
        if siblings is not None:
            siblings.table.set_alive(siblings.slot, False)  # siblings stop sending first
        self._stopped = True
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._listener.fileno())
        self._listener.close()
        if siblings is not None:
            loop.remove_reader(siblings.inbox.fileno())
            self._receive()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _listen(self) -> None:
        if not self._stopped:
            asyncio.get_running_loop().add_reader(self._listener.fileno(), self._accept_ready)

    def _accept_ready(self) -> None:
        """Accept every waiting connection in one go (a reader callback, like asyncio's own
        accept loop: one pass of the event loop, however busy the render threads keep it)."""
        for _ in range(_ACCEPT_BATCH):
            try:
                connection, _ = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:  # EMFILE, ENFILE, ENOBUFS: wait for descriptors to free up
                log.warning("accepting a connection failed: %s", exc)
                loop = asyncio.get_running_loop()
                loop.remove_reader(self._listener.fileno())
                loop.call_later(_ACCEPT_RETRY, self._listen)
                return
            connection.setblocking(False)
            self.accepted += 1
            target = self._sibling_for_new()
            if target is not None and self._hand_over(connection, target):
                continue
            self._count(1)
            self._add_busy(1)  # fresh until its first request head is in
            self._start_adopting(connection)

    def _sibling_for_new(self) -> int | None:
        if not self._balance or self._siblings is None:
            return None
        table, slot = self._siblings.table, self._siblings.slot
        loads = [
            # a connection in transit will arrive fresh: one connection, busy
            (other, table.load(other) + 2 * max(0, self._sent[other] - table.received(other, slot)))
            for other in range(table.slots)
            if other != slot and table.alive(other)
        ]
        return pick_sibling(table.load(slot), loads)

    def _hand_over(self, connection: socket.socket, target: int) -> bool:
        """Pass ``connection`` to ``target``; False (keep it) when its inbox is full or gone."""
        assert self._siblings is not None
        outbox = self._siblings.outboxes[target]
        try:
            socket.send_fds(
                outbox,
                [_SENDER.pack(self._siblings.slot)],
                [connection.fileno()],
                socket.MSG_DONTWAIT,
            )
        except OSError:
            return False
        connection.close()  # the descriptor in flight keeps the connection open
        self._sent[target] += 1
        self.handed_over += 1
        worker_metrics.CONNECTIONS_HANDED_OVER.inc()
        return True

    def _receive(self) -> None:
        """Adopt every connection waiting in this worker's inbox (a reader callback)."""
        assert self._siblings is not None
        table, slot = self._siblings.table, self._siblings.slot
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(
                    self._siblings.inbox, _SENDER.size, 8, socket.MSG_DONTWAIT
                )
            except BlockingIOError:
                return
            if not fds:
                continue
            sender = _SENDER.unpack(data)[0] if len(data) == _SENDER.size else -1
            for fd in fds:
                connection = socket.socket(fileno=fd)
                connection.setblocking(False)
                self._count(1)  # counted before the sender can see it arrived
                self._add_busy(1)
                if 0 <= sender < table.slots:
                    table.note_received(slot, sender)
                self.taken_over += 1
                self._start_adopting(connection)

    def _start_adopting(self, connection: socket.socket) -> None:
        task = asyncio.get_running_loop().create_task(self._adopt(connection))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _adopt(self, connection: socket.socket) -> None:
        """Serve an accepted connection (already counted) through aiohttp."""
        guarded: list[_Guarded] = []

        def protocol() -> asyncio.Protocol:
            assert self._factory is not None
            guarded.append(_Guarded(self._factory(), self))
            return guarded[0]

        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(protocol, connection)
        except OSError as exc:
            connection.close()
            if not guarded or not guarded[0].made:
                self._count(-1)
                self._add_busy(-1)
            log.debug("could not adopt a connection: %s", exc)

    def _count(self, delta: int) -> None:
        self._open += delta
        if self._siblings is not None:
            self._siblings.table.add_connections(self._siblings.slot, delta)
        worker_metrics.WORKER_CONNECTIONS.set(self._open)

    def _add_busy(self, delta: int) -> None:
        self._busy += delta
        if self._siblings is not None:
            self._siblings.table.add_busy(self._siblings.slot, delta)


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, counted, with a deadline on the first head."""

    def __init__(self, inner: asyncio.Protocol, acceptor: Acceptor) -> None:
        self._inner = inner
        self._acceptor = acceptor
        self._transport: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""
        self.made = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made = True
        self._transport = transport
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._acceptor.header_timeout, self._late)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            seen = self._tail + data
            if any(end in seen for end in _HEAD_ENDS):
                self._timer.cancel()
                self._timer, self._tail = None, b""
                self._acceptor._add_busy(-1)  # no longer fresh: the middleware counts it now
            else:
                self._tail = seen[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:  # still fresh
            self._timer.cancel()
            self._timer = None
            self._acceptor._add_busy(-1)
        self._acceptor._count(-1)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def _late(self) -> None:
        self._timer = None
        self._acceptor._add_busy(-1)
        worker_metrics.HEADER_TIMEOUTS.inc()
        log.debug(
            "closing a connection: no request head within %s s", self._acceptor.header_timeout
        )
        if self._transport is not None:
            self._transport.close()
