"""The merge stage's table on disk (``LIENTHONG_STATE_STORE=disk``), caught up from the partials topic.

With a Faust table (``rollups-merged``) every start restored the table from its
changelog, after a local store wiped at every start (``streams.app.reset_local_store``).
That changelog gets a record for every partial update, and it is what a restart
of a worker with two million events behind it spent most of its time on
(measured: 36 s of 63 s, reading ~360,000 records before the first message).

Here the table lives in one rocksdict database per partition of
``lienthong.rollup-partials``, beside the worker's partition databases, with the
offset of the last partial applied (``read-up-to``) written in the same batch.
No changelog is needed, because the partials topic is its own changelog: it is
compacted by ``ward|day|partition``, and each partial is an absolute value
ordered by its ``seq`` (``streams.flags.rollups.merge_step``), so folding the
partials of any stretch of the topic again leaves the table as it was.

When a partition of the partials topic is assigned and its first record comes
(at offset ``O``, where the group's committed offset left it), the database is
caught up first: the partials from its ``read-up-to + 1`` to ``O - 1`` are read
and folded without announcing (whoever read them announced them, and committed
only after the announcements were flushed). A worker restarted on its own
database reads nothing, or the few records its last commit left behind; one
that lost it, or whose partition another worker read meanwhile, reads what it
missed: in Kafka, a compacted topic in proportion to the roll-ups, not to the
history.
"""

from __future__ import annotations

from pathlib import Path

import rocksdict

from hubbase.logs import get_logger
from streams import changelog, rollup_merge
from streams.flags.records import Flag
from streams.store import PartitionDB

log = get_logger(__name__)

#: Database key prefix of one ward × day's entry (``rollup_merge.merge``'s table value).
GROUP_PREFIX = b"g|"
#: Database key: the offset of the last partial applied to the database.
READ_UP_TO = b"m|read-up-to"


class MergeStore:
    """The merge agent's table, one database per partials partition under ``root/merge-p<partition>``."""

    def __init__(self, root: Path, bootstrap: str, topic: str) -> None:
        self.root = root
        self.bootstrap = bootstrap
        self.topic = topic
        self.dbs: dict[int, PartitionDB] = {}
        #: Bumped when a partition is revoked: a catch-up under way for it is not kept.
        self.epochs: dict[int, int] = {}
        #: Partials folded to catch up since the worker started (metrics, tests).
        self.caught_up = 0

    def path(self, partition: int) -> Path:
        return self.root / f"merge-p{partition:04d}"

    async def merge(self, partition: int, offset: int, value: bytes) -> list[Flag]:
        """The merge agent's step for the partial at ``offset``: its announcements.

        The first partial of a partition since it was assigned catches its database up first.
        """
        db = self.dbs.get(partition)
        if db is None:
            epoch = self.epochs.get(partition, 0)
            db = PartitionDB(self.path(partition))
            try:
                await self._catch_up(db, partition, offset)
            except BaseException:
                db.close()
                raise
            if epoch != self.epochs.get(partition, 0):
                db.close()  # revoked while catching up: the next owner reads this partial
                return []
            self.dbs[partition] = db
        return self._apply(db, offset, value)

    def revoked(self, partition: int) -> None:
        """Another worker may read the partition now: its next assignment catches up again."""
        self.epochs[partition] = self.epochs.get(partition, 0) + 1
        db = self.dbs.pop(partition, None)
        if db is not None:
            db.close()

    async def _catch_up(self, db: PartitionDB, partition: int, offset: int) -> None:
        start = read_up_to(db) + 1
        if start >= offset:
            return
        folded = 0
        async for records in changelog.read(self.bootstrap, self.topic, partition, start=start, stop=offset):
            for record in records:
                if record.value is not None:
                    self._apply(db, record.offset, record.value)
                    folded += 1
        self.caught_up += folded
        log.info("merge_table_caught_up", partition=partition, start=start, stop=offset, partials=folded)

    @staticmethod
    def _apply(db: PartitionDB, offset: int, value: bytes) -> list[Flag]:
        group, updated, announce = rollup_merge.merge(value, lambda g: db.get(GROUP_PREFIX + g.encode()))
        batch = rocksdict.WriteBatch(raw_mode=True)
        if updated is not None:
            batch.put(GROUP_PREFIX + group.encode(), updated)
        batch.put(READ_UP_TO, b"%d" % offset)
        db.write(batch)
        return announce


def read_up_to(db: PartitionDB) -> int:
    """The offset of the last partial the database applied (-1: none)."""
    raw = db.get(READ_UP_TO)
    return -1 if raw is None else int(raw)
