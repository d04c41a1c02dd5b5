"""PingBot: listens on AppHub for `ChatMessageCreated` and answers `!ping` with `pong`.

Listening and answering are split on purpose. Realtime events arrive on the hub
connection; answers go through the chat REST API, like any user's message, so they are
stored, ordered and fanned out by the platform (the hub offers no "post a message" method).
pysignalr runs callbacks inside its receive loop, so a callback only queues the message and
a separate task posts the answers: a slow POST never holds up the connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any
from urllib.parse import quote

import httpx
import jwt
from pysignalr.client import SignalRClient
from pysignalr.exceptions import AuthorizationError
from pysignalr.messages import CompletionMessage

from hero.auth import principal_from_claims

logger = logging.getLogger("examples.bot")

HUB_PATH = "/realtime/hub"
CHAT = "/api/v1/chat"
CREATED = "ChatMessageCreated"
TRIGGER = "!ping"
ANSWER = "pong"


class BotStopped(Exception):
    """A problem retrying cannot fix (the server refused the token)."""


def user_id_of(token: str) -> str:
    """Who the bot is, read from its own token with the server's claim rules.

    No signature check: the bot only needs its id to recognise its own messages; the
    server is the one that verifies the token.
    """
    claims = jwt.decode(token, options={"verify_signature": False})
    return principal_from_claims(claims).user_key


def wants_answer(message: Any, own_user_id: str) -> bool:
    """A live message from someone else whose text starts with `!ping`."""
    if not isinstance(message, dict) or message.get("deletedAtUtc"):
        return False
    if message.get("authorUserId") == own_user_id:  # never answer ourselves (no loops)
        return False
    body = message.get("body")
    return isinstance(body, str) and body.strip().startswith(TRIGGER)


async def invoke(client: SignalRClient, method: str, *args: Any, timeout: float = 10) -> Any:
    """A hub call that waits for its completion (pysignalr reports it by callback)."""
    done: asyncio.Future[CompletionMessage] = asyncio.get_running_loop().create_future()

    async def completed(message: Any) -> None:
        if not done.done():
            done.set_result(message)

    await client.send(method, list(args), on_invocation=completed)
    async with asyncio.timeout(timeout):
        message = await done
    if message.error:
        raise RuntimeError(f"{method} failed: {message.error}")
    return message.result


class PingBot:
    def __init__(self, base_url: str, token: str, *, retry_limit: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.user_id = user_id_of(token)
        self.retry_limit = retry_limit
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._delay = 1.0  # before the next connection attempt; reset once connected

    async def run(self) -> None:
        """Until cancelled, or BotStopped."""
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._answer_forever())
                await self._stay_connected()
        except* BotStopped as group:
            raise group.exceptions[0] from None
        finally:
            await self._http.aclose()

    # ------------------------------------------------------------------ connection

    def _client(self) -> SignalRClient:
        # The token goes in the query, as a browser's would: pysignalr copies its `headers`
        # into every invocation it sends, and hero accepts `access_token` on the hub path
        # (and only there), redacting it from its logs.
        url = f"{self.base_url}{HUB_PATH}?access_token={quote(self.token)}"
        # retry_count=1: when the connection drops, pysignalr would reconnect with the old
        # connection id, which the server has forgotten; a fresh client negotiates anew.
        client = SignalRClient(url, retry_count=1)
        client.on(CREATED, self._on_created)

        async def opened() -> None:
            # pysignalr awaits this before it reads the first message: whatever waits
            # for a reply must run in a task of its own.
            self._spawn(self._connected(client))

        client.on_open(opened)
        client.on_close(self._on_close)
        return client

    async def _stay_connected(self) -> None:
        while True:
            try:
                await self._client().run()
            except AuthorizationError:
                raise BotStopped(
                    "the hub refused the token (401): is it signed with the server's key, "
                    "and not expired?"
                ) from None
            except Exception as exc:
                cause = exc.__cause__ or exc  # pysignalr wraps the real reason
                logger.warning(
                    "connection lost (%s: %s), retrying in %.0f s",
                    type(cause).__name__,
                    cause,
                    self._delay,
                )
            await asyncio.sleep(self._delay)
            self._delay = min(self._delay * 2, self.retry_limit)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)  # keep a reference, or the task may be garbage collected
        task.add_done_callback(self._tasks.discard)

    async def _connected(self, client: SignalRClient) -> None:
        """AppHub puts a new connection in its user's channel groups in `on_connected`,
        which runs after the handshake reply: being "open" does not yet mean hearing the
        channels. A hub call completes only after that, so one JoinChannel per channel
        (idempotent) is both the proof and a catch-up for a channel added meanwhile."""
        try:
            channels = await self._my_channels()
            for channel in channels:
                await invoke(client, "JoinChannel", channel)
        except Exception:
            logger.exception("could not join the channels")
            return
        self._delay = 1.0
        logger.info("bot connected as %s, listening in %d channel(s)", self.user_id, len(channels))

    async def _my_channels(self) -> list[str]:
        ids: list[str] = []
        page = 1
        while True:
            response = await self._http.get(
                f"{CHAT}/channels", params={"page": page, "pageSize": 200}
            )
            response.raise_for_status()
            batch = response.json()
            ids += [str(channel["id"]) for channel in batch]
            if len(batch) < 200:
                return ids
            page += 1

    async def _on_close(self) -> None:
        logger.info("bot disconnected")

    # ------------------------------------------------------------------ answering

    async def _on_created(self, args: list[Any]) -> None:
        message = args[0] if args else None
        if wants_answer(message, self.user_id):
            assert isinstance(message, dict)
            self._inbox.put_nowait(message)

    async def _answer_forever(self) -> None:
        while True:
            message = await self._inbox.get()
            try:
                await self.answer(message)
            except Exception:
                logger.exception("could not answer message %s", message.get("id"))

    async def answer(self, message: dict[str, Any]) -> None:
        """POST `pong` to the message's channel, retrying a few times.

        The Idempotency-Key is derived from the message answered: a retry after a lost
        response, or the same event delivered twice (the platform delivers at least once
        across a crash), still yields one `pong`.
        """
        channel = message["channelId"]
        headers = {"Idempotency-Key": f"pong-{message['id']}"}
        for attempt in range(3):
            try:
                response = await self._http.post(
                    f"{CHAT}/channels/{channel}/messages", json={"body": ANSWER}, headers=headers
                )
            except httpx.TransportError as exc:
                logger.warning("posting the answer failed: %s", exc)
            else:
                if response.status_code in (200, 201):
                    logger.info("answered %s in channel %s", message["id"], channel)
                    return
                if response.status_code < 500:  # 403, 404: retrying will not help
                    logger.warning("answer refused: %s %s", response.status_code, response.text)
                    return
            await asyncio.sleep(0.5 * 2**attempt)
        logger.error("gave up answering %s", message["id"])
