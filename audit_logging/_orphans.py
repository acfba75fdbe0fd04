"""Spools left by processes that are gone: adopted at start and sent under their own producer
name, so the broker drops what it already has (deduplication), before new records of ours
that wait in our own spool."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from audit_logging._link import CONFIRM_TIMEOUT, Link
from audit_logging._outbox import MAX_BATCH, MAX_BATCH_BYTES
from audit_logging._spool import Spool
from audit_logging.errors import describe_error

logger = logging.getLogger("audit_logging.publisher")


async def replay_orphan(link: Link, orphan: Spool) -> bool:
    """Send what ``orphan`` holds; True once its folder is empty and removed."""
    outbox = link.outbox
    producer: Any = None
    try:
        producer = await link.open_producer(orphan.producer_name)
        if orphan.overflow_count:
            await _number_overflow(link, producer, orphan)
        while True:
            outbox.relieve_queue()
            entries = orphan.read(MAX_BATCH, MAX_BATCH_BYTES)
            if not entries:
                break
            done = asyncio.get_running_loop().create_future()
            waiting = {e.publishing_id for e in entries}

            def on_confirm(
                status: Any, waiting: set[int] = waiting, done: asyncio.Future[None] = done
            ) -> None:
                waiting.discard(status.message_id)
                if not status.is_confirmed and not done.done():
                    done.set_exception(ConnectionError("not confirmed"))
                elif not waiting and not done.done():
                    done.set_result(None)

            await asyncio.wait_for(
                link.send_routed(
                    producer,
                    [(e.publishing_id, e.body) for e in entries],
                    on_confirm,
                    orphan.producer_name,
                ),
                CONFIRM_TIMEOUT,
            )
            await asyncio.wait_for(done, CONFIRM_TIMEOUT)
            orphan.commit(entries[-1].end, len(entries))
            outbox.counts["published"] += len(entries)
            outbox.counts["replayed"] += len(entries)
    except Exception as exc:  # noqa: BLE001 - try again on a later round
        orphan.rewind()
        link.report(
            "orphan",
            logging.WARNING,
            "Replaying the spool %s failed (%s); will retry",
            orphan.path,
            describe_error(exc),
        )
        if producer is not None:
            await link.release(producer)
        return False
    await link.release(producer)
    logger.info("Replayed the spool %s left by an earlier process", orphan.path)
    orphan.close(remove_if_empty=True)
    return True


async def _number_overflow(link: Link, producer: Any, orphan: Spool) -> None:
    """Give the orphan's overflow records ids after every id the broker has seen from it."""
    client = await producer.default_client
    sequence = 0
    for stream in link.streams:
        sequence = max(
            sequence,
            await client.query_publisher_sequence(stream=stream, reference=orphan.producer_name),
        )
    next_id = max(sequence, orphan.last_id()) + 1

    def assign(bodies: list[bytes]) -> list[tuple[int, bytes]]:
        return list(enumerate(bodies, start=next_id))

    orphan.drain_overflow(assign)
