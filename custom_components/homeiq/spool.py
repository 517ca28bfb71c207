"""The on-disk spool: one file per batch, named by sequence so delivery keeps order.

Every method here does blocking file I/O and is run in an executor thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
import shutil
import time

SUFFIX = ".json"


@dataclass(slots=True)
class SpoolItem:
    """One spooled batch; `body` is kept in memory while there is room, else read back."""

    seq: int
    path: Path
    events: int
    nbytes: int
    created: float = field(default_factory=time.time)
    body: bytes | None = None


class Spool:
    """Files `<seq>_<events>_<batch_id>.json` in one directory per config entry."""

    def __init__(self, directory: Path) -> None:
        """Nothing touches the disk until `load`."""
        self.directory = directory
        self._next_seq = 1

    def load(self) -> list[SpoolItem]:
        """Create the directory and return what an earlier run left, oldest first."""
        self.directory.mkdir(parents=True, exist_ok=True)
        items: list[SpoolItem] = []
        for path in self.directory.iterdir():
            if path.suffix == ".tmp":
                # a write cut short by a crash: its events were never counted as spooled
                path.unlink(missing_ok=True)
                continue
            parts = path.stem.split("_", 2)
            if path.suffix != SUFFIX or len(parts) != 3 or not parts[0].isdigit():
                continue
            stat = path.stat()
            items.append(SpoolItem(int(parts[0]), path, int(parts[1]), stat.st_size, stat.st_mtime))
        items.sort(key=lambda item: item.seq)
        if items:
            self._next_seq = items[-1].seq + 1
        return items

    def write(self, batch_id: str, events: int, body: bytes) -> SpoolItem:
        """Write one batch atomically (temp file + rename)."""
        seq = self._next_seq
        self._next_seq += 1
        path = self.directory / f"{seq:012d}_{events}_{batch_id}{SUFFIX}"
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as file:
            file.write(body)
        tmp.replace(path)
        return SpoolItem(seq, path, events, len(body), body=body)

    @staticmethod
    def read(item: SpoolItem) -> bytes:
        """Read a batch back for sending."""
        return item.path.read_bytes()

    @staticmethod
    def remove(items: list[SpoolItem]) -> None:
        """Forget acknowledged (or dropped) batches."""
        for item in items:
            item.path.unlink(missing_ok=True)

    def destroy(self) -> None:
        """Remove the whole spool (the config entry was deleted)."""
        shutil.rmtree(self.directory, ignore_errors=True)
