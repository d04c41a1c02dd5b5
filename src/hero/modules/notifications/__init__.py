"""The notifications module: the Notification entity, its REST API, `NotificationCreated`
pushes to `user:{tenantId}:{userId}`, and the `GET /notifications` Server-Sent Events stream."""

from pathlib import Path

from hero.modules.notifications.models import NotificationsModel
from hero.modules.notifications.routes import notifications_router
from hero.modules.notifications.service import NotificationService

NOTIFICATIONS_MIGRATIONS = Path(__file__).parent / "migrations"
"""The module's migration folder (Alembic branch `notifications`)."""

__all__ = [
    "NOTIFICATIONS_MIGRATIONS",
    "NotificationService",
    "NotificationsModel",
    "notifications_router",
]
