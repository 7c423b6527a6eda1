"""Run the toy service from settings in the environment; with CRASH_AFTER_DB_COMMIT=1 it
SIGKILLs itself right after its first batch's database commit, before the offset commit.
With SERVE=1 it runs as a service process does, through `medgov_shared.service.run`."""

import asyncio
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from medgov_shared.service import run  # noqa: E402
from toy import ToySettings, build_toy  # noqa: E402


async def main() -> None:
    service = build_toy(ToySettings(), [os.environ["TOY_TOPIC"]])
    await service.start()

    async def die(*_: object) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if os.environ.get("CRASH_AFTER_DB_COMMIT") == "1":
        assert service.consumer is not None
        service.consumer.after_database_commit = die
    try:
        await asyncio.Event().wait()
    finally:
        await service.stop()


if __name__ == "__main__":
    if os.environ.get("SERVE") == "1":
        run(build_toy(ToySettings(), [os.environ["TOY_TOPIC"]]))
    else:
        asyncio.run(main())
