"""hero.realtime (public API pending)."""
