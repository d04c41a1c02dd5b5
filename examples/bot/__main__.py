"""`python -m examples.bot --url http://127.0.0.1:8000 [--token T]` (or HERO_TOKEN=T)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from examples.bot.bot import BotStopped, PingBot


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m examples.bot", description="Answers !ping with pong in its channels."
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="hero serve's base URL")
    parser.add_argument(
        "--token",
        default=os.environ.get("HERO_TOKEN"),
        help="the bot user's access token (default: $HERO_TOKEN; the environment keeps it "
        "out of `ps`)",
    )
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("a token is required: --token or HERO_TOKEN")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # pysignalr narrates every state change at INFO, and warns about each event the bot
    # has no handler for (presence, typing, ...); httpx logs every request at INFO.
    logging.getLogger("pysignalr").setLevel(logging.WARNING)
    logging.getLogger("pysignalr.client").setLevel(logging.ERROR)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        bot = PingBot(args.url, args.token)
    except Exception as exc:
        print(f"bot: the token cannot be read: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(bot.run())
    except BotStopped as exc:
        logging.getLogger("examples.bot").error("bot stopped: %s", exc)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
