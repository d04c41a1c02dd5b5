"""Your own FastAPI application with a hero hub mounted in it (see README.md)."""
