"""The chat REST API under `/api/v1/chat` (FastAPI router)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse
from pydantic import Field

from hero.modules.chat.core import MAX_GROUP_DM
from hero.modules.chat.dtos import ChannelIn, EditIn, MessageIn, ReactionIn, ReadIn, UserIdsIn
from hero.modules.chat.service import ChatService
from hero.modules.http import Caller, Text

Page = Annotated[int, Query(ge=1, le=100000)]
PageSize = Annotated[int, Query(alias="pageSize", ge=1, le=200)]


class DmIn(UserIdsIn):
    """The other members of a direct or group conversation (the caller is implied)."""

    user_ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_GROUP_DM)


_FOUND_AGAIN: dict[str, Any] = {
    "description": "The conversation with these members already existed",
    "content": {"application/json": {"schema": {"type": "object"}}},
}
_REPLAYED: dict[str, Any] = {
    "description": "A replay (same Idempotency-Key): the message first created",
    "content": {"application/json": {"schema": {"type": "object"}}},
}


def chat_router(service: ChatService) -> APIRouter:
    """Every chat route, bound to `service`."""
    router = APIRouter(prefix="/api/v1/chat", tags=["chat"])

    @router.post("/channels", status_code=201)
    async def create_channel(body: ChannelIn, caller: Caller) -> dict[str, Any]:
        return await service.create_channel(
            caller.tenant_id, caller.user_id, body.name, body.description, body.is_private
        )

    @router.get("/channels")
    async def my_channels(
        caller: Caller, page: Page = 1, size: PageSize = 50
    ) -> list[dict[str, Any]]:
        return await service.my_channels(caller.tenant_id, caller.user_id, page, size)

    @router.get("/channels/discover")
    async def discover(
        caller: Caller,
        search: Annotated[Text | None, Query(max_length=200)] = None,
        page: Page = 1,
        size: PageSize = 50,
    ) -> list[dict[str, Any]]:
        return await service.discover(caller.tenant_id, caller.user_id, search, page, size)

    @router.get("/channels/{channel_id}")
    async def get_channel(channel_id: uuid.UUID, caller: Caller) -> dict[str, Any]:
        return await service.get_channel(caller.tenant_id, caller.user_id, channel_id)

    @router.put("/channels/{channel_id}")
    async def update_channel(
        channel_id: uuid.UUID, body: ChannelIn, caller: Caller
    ) -> dict[str, Any]:
        return await service.update_channel(
            caller.tenant_id,
            caller.user_id,
            channel_id,
            body.name,
            body.description,
            body.is_private,
        )

    @router.delete("/channels/{channel_id}", status_code=204)
    async def archive(channel_id: uuid.UUID, caller: Caller) -> Response:
        await service.archive(caller.tenant_id, caller.user_id, channel_id, True)
        return Response(status_code=204)

    @router.post("/channels/{channel_id}/restore")
    async def restore(channel_id: uuid.UUID, caller: Caller) -> dict[str, Any]:
        await service.archive(caller.tenant_id, caller.user_id, channel_id, False)
        return await service.get_channel(caller.tenant_id, caller.user_id, channel_id)

    @router.post("/channels/{channel_id}/join")
    async def join(channel_id: uuid.UUID, caller: Caller) -> dict[str, Any]:
        return await service.join(caller.tenant_id, caller.user_id, channel_id)

    @router.post("/channels/{channel_id}/members")
    async def add_members(channel_id: uuid.UUID, body: UserIdsIn, caller: Caller) -> dict[str, Any]:
        return await service.add_members(
            caller.tenant_id, caller.user_id, channel_id, body.user_ids
        )

    @router.delete("/channels/{channel_id}/members/{user_id}", status_code=204)
    async def remove_member(channel_id: uuid.UUID, user_id: uuid.UUID, caller: Caller) -> Response:
        await service.remove_member(caller.tenant_id, caller.user_id, channel_id, user_id)
        return Response(status_code=204)

    @router.post("/dms", status_code=201, responses={200: _FOUND_AGAIN})
    async def open_dm(body: DmIn, caller: Caller) -> JSONResponse:
        dto, created = await service.open_dm(caller.tenant_id, caller.user_id, body.user_ids)
        return JSONResponse(dto, status_code=201 if created else 200)

    @router.post("/channels/{channel_id}/messages", status_code=201, responses={200: _REPLAYED})
    async def post_message(
        channel_id: uuid.UUID,
        body: MessageIn,
        caller: Caller,
        idempotency_key: Annotated[Text | None, Header(alias="Idempotency-Key")] = None,
    ) -> JSONResponse:
        dto, created = await service.post(
            caller.tenant_id,
            caller.user_id,
            channel_id,
            body.body,
            body.parent_message_id,
            idempotency_key,
        )
        return JSONResponse(dto, status_code=201 if created else 200)

    @router.get("/channels/{channel_id}/messages")
    async def messages(
        channel_id: uuid.UUID,
        caller: Caller,
        before: uuid.UUID | None = None,
        after: uuid.UUID | None = None,
        size: PageSize = 50,
    ) -> list[dict[str, Any]]:
        return await service.messages(
            caller.tenant_id, caller.user_id, channel_id, before, after, size
        )

    @router.get("/messages/{message_id}/replies")
    async def replies(
        message_id: uuid.UUID, caller: Caller, before: uuid.UUID | None = None, size: PageSize = 50
    ) -> list[dict[str, Any]]:
        return await service.replies(caller.tenant_id, caller.user_id, message_id, before, size)

    @router.put("/messages/{message_id}")
    async def edit(message_id: uuid.UUID, body: EditIn, caller: Caller) -> dict[str, Any]:
        return await service.edit(caller.tenant_id, caller.user_id, message_id, body.body)

    @router.delete("/messages/{message_id}", status_code=204)
    async def delete(message_id: uuid.UUID, caller: Caller) -> Response:
        await service.delete(caller.tenant_id, caller.user_id, message_id)
        return Response(status_code=204)

    @router.post("/messages/{message_id}/pin")
    async def pin(message_id: uuid.UUID, caller: Caller) -> dict[str, Any]:
        return await service.pin(caller.tenant_id, caller.user_id, message_id, True)

    @router.delete("/messages/{message_id}/pin")
    async def unpin(message_id: uuid.UUID, caller: Caller) -> dict[str, Any]:
        return await service.pin(caller.tenant_id, caller.user_id, message_id, False)

    @router.post("/messages/{message_id}/reactions")
    async def react(message_id: uuid.UUID, body: ReactionIn, caller: Caller) -> dict[str, Any]:
        return await service.react(caller.tenant_id, caller.user_id, message_id, body.emoji, True)

    @router.delete("/messages/{message_id}/reactions/{emoji}")
    async def unreact(message_id: uuid.UUID, emoji: Text, caller: Caller) -> dict[str, Any]:
        return await service.react(caller.tenant_id, caller.user_id, message_id, emoji, False)

    @router.post("/channels/{channel_id}/read")
    async def read(channel_id: uuid.UUID, body: ReadIn, caller: Caller) -> dict[str, Any]:
        return await service.read(caller.tenant_id, caller.user_id, channel_id, body.message_id)

    @router.get("/channels/{channel_id}/pinned")
    async def pinned(channel_id: uuid.UUID, caller: Caller) -> list[dict[str, Any]]:
        return await service.pinned(caller.tenant_id, caller.user_id, channel_id)

    @router.get("/search")
    async def search(
        caller: Caller,
        q: Annotated[Text, Query(min_length=1, max_length=500)],
        channel_id: Annotated[uuid.UUID | None, Query(alias="channelId")] = None,
        page: Page = 1,
        size: PageSize = 50,
    ) -> list[dict[str, Any]]:
        return await service.search(caller.tenant_id, caller.user_id, q, channel_id, page, size)

    return router
