"""The connection registry: creates, finds, runs and reaps logical connections."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable

from hero.realtime.transports import Connection, ConnectionState, Identity, TransportKind
from hero.realtime.transports.lifecycle import AWAITING_CLIENT

logger = logging.getLogger("hero.realtime.connections")

Application = Callable[[Connection], Awaitable[None]]


def new_id() -> str:
    """16 random bytes, base64url without padding (22 URL-safe characters)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode("ascii")


def _is_timestamp(text: str) -> bool:
    """ASCII digits of a plausible length: str.isdigit alone also accepts characters such as
    "²" that int() refuses, and int() refuses thousands of digits."""
    return 0 < len(text) <= 20 and text.isascii() and text.isdigit()


class ConnectionManager:
    """Owns every logical connection of one endpoint and the tasks that run them.

    Background work (the application task of each connection and the reaper) is created
    lazily on first use and cancelled by `aclose()`; the host's lifespan should call it.
    """

    def __init__(
        self,
        application: Application,
        *,
        disconnect_timeout: float,
        inbound_limit: int,
        outbound_limit: int,
        token_key: bytes | None = None,
        instance: str | None = None,
    ) -> None:
        self._application = application
        self._token_key = token_key
        self.instance = instance
        """This instance's name, written into the tokens it issues (see `owner_of`)."""
        self._disconnect_timeout = disconnect_timeout
        self._inbound_limit = inbound_limit
        self._outbound_limit = outbound_limit
        self._by_token: dict[str, Connection] = {}
        self._per_user: dict[str, int] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._closing = False
        self.on_forget: Callable[[Connection], None] | None = None
        """Called when a connection leaves the registry (for good)."""

    def __len__(self) -> int:
        return len(self._by_token)

    def count_for(self, user_id: str) -> int:
        """How many connections of this user the registry holds: each counts from its
        creation (negotiate, a WebSocket without negotiate, an adoption) until it is forgotten
        (ended, disposed or reaped), whether or not its transport ever started."""
        return self._per_user.get(user_id, 0)

    def _mac(self, connection_id: str, issued: int, user_id: str | None, owner: str = "") -> str:
        assert self._token_key is not None
        material = f"{connection_id}|{issued}|{user_id or ''}|{owner}".encode()
        digest = hmac.new(self._token_key, material, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def create(self, identity: Identity, *, version: int = 1) -> Connection:
        """A new connection. With a token key, version-1 tokens are `<id>.<issued>.<mac>`,
        or `<id>.<issued>.<owner>.<mac>` when this instance has a name (the MAC covers the id,
        the issue time, the user and the owner), so another process holding the same key can
        adopt the connection (see `adopt`) or find its owner (see `owner_of`)."""
        connection_id = new_id()
        if version == 0:
            token = connection_id
        elif self._token_key is not None:
            issued = int(time.time())
            owner = self.instance or ""
            mac = self._mac(connection_id, issued, identity.user_id, owner)
            token = ".".join(p for p in (connection_id, str(issued), owner, mac) if p)
        else:
            token = new_id()
        return self._register(connection_id, token, identity)

    def adopt(self, token: str, identity: Identity) -> Connection | None:
        """A WebSocket for a connection negotiated by another process sharing the token key
        (`hero serve --workers N`): create the connection here when the token is ours, was
        issued to this same user, and is younger than the disconnect timeout (a negotiated
        connection unused that long is gone anyway). None otherwise."""
        if self._token_key is None:
            return None
        parts = token.split(".")
        if len(parts) not in (3, 4) or not _is_timestamp(parts[1]):
            return None
        connection_id, issued_text, mac = parts[0], parts[1], parts[-1]
        owner = parts[2] if len(parts) == 4 else ""
        issued = int(issued_text)
        expected = self._mac(connection_id, issued, identity.user_id, owner)
        # compare_digest raises TypeError for a str with non-ASCII characters: compare bytes.
        if not hmac.compare_digest(mac.encode("utf-8", "surrogatepass"), expected.encode()):
            return None
        if not 0 <= time.time() - issued <= self._disconnect_timeout + 1:
            return None
        return self._register(connection_id, token, identity)

    @staticmethod
    def owner_of(token: str) -> str | None:
        """The instance named in a token issued by `create` (None for tokens without one).
        Not verified here: the owner authenticates a forwarded request again, and a forged
        owner name only sends the caller's own request to another instance."""
        parts = token.split(".")
        return parts[2] if len(parts) == 4 and parts[2] else None

    def _register(self, connection_id: str, token: str, identity: Identity) -> Connection:
        connection = Connection(
            connection_id,
            token,
            identity,
            inbound_limit=self._inbound_limit,
            outbound_limit=self._outbound_limit,
        )
        self._by_token[token] = connection
        user = identity.user_id
        if user is not None:
            self._per_user[user] = self._per_user.get(user, 0) + 1
        self._ensure_reaper()
        return connection

    def get(self, token: str) -> Connection | None:
        return self._by_token.get(token)

    def start(self, connection: Connection, transport: TransportKind) -> bool:
        """Attach the transport kind and run the application for this connection. False
        (nothing done) unless the connection is still NEGOTIATED."""
        lifecycle = connection.lifecycle
        if lifecycle.state is not ConnectionState.NEGOTIATED:
            return False
        connection.transport = transport
        polling = transport is TransportKind.LONG_POLLING
        lifecycle.transition(
            ConnectionState.WAITING_FOR_POLL if polling else ConnectionState.ACTIVE
        )
        task = asyncio.get_running_loop().create_task(
            self._run(connection), name=f"hero-connection-{connection.connection_id}"
        )
        self._tasks[connection.connection_token] = task
        return True

    async def _run(self, connection: Connection) -> None:
        try:
            await self._application(connection)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("connection %s failed", connection.connection_id)
        finally:
            connection.close()
            self._tasks.pop(connection.connection_token, None)
            if connection.transport is not TransportKind.LONG_POLLING:
                self._forget(connection)

    def dispose(self, connection: Connection) -> None:
        """The connection is over: the application reads end of stream, the id is dropped."""
        connection.client_gone()
        self._forget(connection)

    def _forget(self, connection: Connection) -> None:
        connection.lifecycle.dispose()
        if self._by_token.get(connection.connection_token) is connection:
            del self._by_token[connection.connection_token]
            if self.on_forget is not None:
                self.on_forget(connection)
            user = connection.identity.user_id
            if user is not None:
                left = self._per_user.get(user, 0) - 1
                if left > 0:
                    self._per_user[user] = left
                else:
                    self._per_user.pop(user, None)
        if connection.connection_token not in self._tasks:
            connection.outbound.close()

    def _ensure_reaper(self) -> None:
        if self._reaper is None and not self._closing:
            self._reaper = asyncio.get_running_loop().create_task(
                self._reap_forever(), name="hero-connection-reaper"
            )

    async def _reap_forever(self) -> None:
        interval = min(1.0, self._disconnect_timeout / 4)
        while True:
            await asyncio.sleep(interval)
            self.reap(time.monotonic())

    def reap(self, now: float) -> None:
        """Dispose connections inactive for longer than the disconnect timeout: negotiated
        but never used, long polling with no poll in progress, or a stateful WebSocket
        connection whose socket dropped and was not resumed (the AWAITING_CLIENT states), with
        no request in flight."""
        for connection in list(self._by_token.values()):
            lifecycle = connection.lifecycle
            if lifecycle.requests or lifecycle.state not in AWAITING_CLIENT:
                continue
            if now - lifecycle.last_seen >= self._disconnect_timeout:
                logger.debug("reaping inactive connection %s", connection.connection_id)
                self.dispose(connection)

    async def aclose(self) -> None:
        """Stop everything: connections see end of stream, tasks are awaited then cancelled."""
        self._closing = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        for connection in list(self._by_token.values()):
            self.dispose(connection)
        tasks = list(self._tasks.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
