"""The notifications REST API and the `GET /notifications` Server-Sent Events stream."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from hero.conventions import Events, user_group
from hero.modules.http import Caller, Problem, Text, bad_request
from hero.modules.notifications.service import NotificationService
from hero.realtime import HubContext, ListenerOverflow


class NotificationIn(BaseModel):
    userId: uuid.UUID
    type: Text = Field(min_length=1, max_length=100)
    title: Text = Field(min_length=1, max_length=500)
    body: Text | None = Field(default=None, max_length=32768)
    link: Text | None = Field(default=None, max_length=2000)


def _event(dto: dict[str, Any]) -> bytes:
    data = msgspec.json.encode(dto).decode()
    return f"id: {dto['id']}\nevent: {Events.NOTIFICATION_CREATED}\ndata: {data}\n\n".encode()


def notifications_router(
    service: NotificationService, hub: HubContext | None, *, comment_interval: float = 15.0
) -> APIRouter:
    router = APIRouter(tags=["notifications"])
    base = "/api/v1/notifications"

    @router.post(base, status_code=201)
    async def create(body: NotificationIn, caller: Caller) -> dict[str, Any]:
        if "admin" not in caller.roles:
            raise Problem(403, "Forbidden", "Creating notifications requires the admin role.")
        return await service.create(
            caller.tenant_id,
            body.userId,
            type=body.type,
            title=body.title,
            body=body.body,
            link=body.link,
            source="admin",
        )

    @router.get(base)
    async def list_notifications(
        caller: Caller,
        unread_only: Annotated[bool, Query(alias="unreadOnly")] = False,
        page: Annotated[int, Query(ge=1, le=100_000)] = 1,
        page_size: Annotated[int, Query(alias="pageSize", ge=1, le=200)] = 50,
    ) -> list[dict[str, Any]]:
        return await service.list(
            caller.tenant_id, caller.user_id, unread_only=unread_only, page=page, size=page_size
        )

    @router.get(f"{base}/unread-count")
    async def unread_count(caller: Caller) -> dict[str, int]:
        return {"count": await service.unread_count(caller.tenant_id, caller.user_id)}

    @router.post(f"{base}/read-all")
    async def read_all(caller: Caller) -> dict[str, int]:
        return {"updated": await service.mark_all_read(caller.tenant_id, caller.user_id)}

    @router.post(f"{base}/{{notification_id}}/read", status_code=204)
    async def read(notification_id: uuid.UUID, caller: Caller) -> Response:
        await service.mark_read(caller.tenant_id, caller.user_id, notification_id)
        return Response(status_code=204)

    @router.get("/notifications", response_class=StreamingResponse)
    async def stream(
        caller: Caller,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
        last_event_query: Annotated[str | None, Query(alias="lastEventId")] = None,
    ) -> StreamingResponse:
        raw = last_event_id or last_event_query
        after: uuid.UUID | None = None
        if raw:
            try:
                after = uuid.UUID(raw.strip())
            except ValueError:
                raise bad_request(
                    "Last-Event-ID must be a notification id.", "Last-Event-ID"
                ) from None
        if hub is None:
            raise Problem(503, "Service Unavailable", "Realtime delivery is not enabled.")
        return StreamingResponse(
            _events(caller.tenant_id, caller.user_id, after),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def _events(
        tenant_id: str, user_id: uuid.UUID, after: uuid.UUID | None
    ) -> AsyncIterator[bytes]:
        assert hub is not None
        group = user_group(tenant_id, user_id)
        # Listen first, then replay: nothing created in between is missed, and live events
        # that were replayed are skipped by id. (Not by comparing ids: one committed later
        # can carry a smaller UUIDv7 when another instance's clock minted it.)
        async with hub.listen([group], targets=[Events.NOTIFICATION_CREATED]) as listener:
            yield b": connected\n\n"
            replayed: set[str] = set()
            if after is not None:
                for dto in await service.created_after(tenant_id, user_id, after):
                    replayed.add(dto["id"])
                    yield _event(dto)
            while True:
                try:
                    message = await listener.next(timeout=comment_interval)
                except ListenerOverflow:
                    return  # the client reconnects with Last-Event-ID and catches up
                if message is None:
                    yield b": keep-alive\n\n"
                    continue
                live = message.arguments[0] if message.arguments else None
                if not isinstance(live, dict) or "id" not in live:
                    continue
                if str(live["id"]) in replayed:
                    replayed.discard(str(live["id"]))  # each arrives live at most once
                    continue
                yield _event(live)

    return router
