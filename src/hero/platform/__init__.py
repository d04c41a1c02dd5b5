"""The composition root: settings, application assembly, and everything read once at start-up."""
