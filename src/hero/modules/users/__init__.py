"""The user directory: users the platform has seen in valid tokens, per tenant, with their
display names (mentions resolve against it)."""

from pathlib import Path

from hero.modules.users.directory import UserDirectory, UsersModel

USERS_MIGRATIONS = Path(__file__).parent / "migrations"
"""The directory's migration folder (Alembic branch `users`)."""

__all__ = ["USERS_MIGRATIONS", "UserDirectory", "UsersModel"]
