"""Live dashboards on hero's platform, fed by a background task (see README.md)."""
