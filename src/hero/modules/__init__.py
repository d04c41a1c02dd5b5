"""Application modules on top of the realtime library: chat, notifications, the user directory.

Modules talk to the hub only through `hero.realtime.HubContext` (and hub mixins), to the
database through `hero.data`, and to HTTP through FastAPI routers built by `hero.modules.http`
helpers. The platform composes them.
"""
