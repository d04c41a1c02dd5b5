"""The demo chat served at `/` (see `routes.demo_routes`)."""

from hero.platform.demo.routes import DEMO_TENANT, DEMO_USERS, DemoUser, demo_routes

__all__ = ["DEMO_TENANT", "DEMO_USERS", "DemoUser", "demo_routes"]
