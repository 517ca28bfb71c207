"""python -m homeiq_addon: run the store service until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from .app import serve
from .backups.snapshot import promote_snapshot
from .config import Config, TokenRefused, parse_args
from .store.migrations import SchemaTooNew


async def _main(config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(config, stop)


def main() -> None:
    # The writer thread is busy in Python during ingest; when network data arrives the
    # event loop waits for the GIL up to the switch interval. 1 ms instead of 5 keeps
    # requests flowing to the writer.
    sys.setswitchinterval(0.001)
    config = parse_args()
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        # After a Supervisor restore only the backup snapshot exists; it becomes the database.
        promote_snapshot(config.data_dir)
        asyncio.run(_main(config))
    except (SchemaTooNew, TokenRefused) as err:
        logging.getLogger("homeiq_addon").error("%s", err)
        sys.exit(2)


if __name__ == "__main__":
    main()
