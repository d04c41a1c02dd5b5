"""A chat bot on pysignalr that answers `!ping` (see README.md)."""
