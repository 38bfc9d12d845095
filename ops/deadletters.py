"""The dead-letter queue, for operators: list what was dead-lettered and why, and replay it.

A replay publishes the original event again on its original subject under a new message id (the
domain stream's duplicate window would drop the original id). The consumer that failed has no
inbox row for the event and handles it; every other consumer finds it in its inbox and skips it.
The dead letter is deleted once the replay has its PubAck.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from nats.js.errors import NotFoundError

from trellis.bus import DLQ_STREAM

if TYPE_CHECKING:
    from nats.js.client import JetStreamContext

_OURS = ("Trellis-", "Nats-Msg-Id")


@dataclass(frozen=True)
class DeadLetter:
    seq: int
    consumer: str
    subject: str
    deliveries: int
    error: str
    time: datetime | None
    headers: dict[str, str]
    data: bytes


async def dead_letters(js: JetStreamContext, *, consumer: str | None = None, limit: int = 100) -> list[DeadLetter]:
    """Oldest first, at most `limit`, optionally only one consumer's."""
    try:
        info = await js.stream_info(DLQ_STREAM)
    except NotFoundError:
        return []
    found: list[DeadLetter] = []
    seq = info.state.first_seq
    while seq and seq <= info.state.last_seq and len(found) < limit:
        try:
            msg = await js.get_msg(DLQ_STREAM, seq)
        except NotFoundError:  # deleted (replayed) in the middle of the stream
            seq += 1
            continue
        seq += 1
        letter = _letter(msg)
        if consumer is None or letter.consumer == consumer:
            found.append(letter)
    return found


async def replay(js: JetStreamContext, letter: DeadLetter) -> None:
    headers = {k: v for k, v in letter.headers.items() if not k.startswith(_OURS)}
    original = letter.headers.get("Nats-Msg-Id", str(letter.seq))
    headers["Nats-Msg-Id"] = f"{original}:replay:{letter.seq}"
    stream = letter.headers.get("Trellis-Original-Stream") or letter.subject.split(".", 1)[0].upper()
    await js.publish(letter.subject, letter.data, headers=headers, stream=stream, timeout=5.0)
    await js.delete_msg(DLQ_STREAM, letter.seq)


def _letter(msg: Any) -> DeadLetter:
    h = {str(k): str(v) for k, v in (msg.headers or {}).items()}
    return DeadLetter(
        seq=int(msg.seq), consumer=h.get("Trellis-Consumer", msg.subject.removeprefix("dlq.")),
        subject=h.get("Trellis-Original-Subject", ""), deliveries=int(h.get("Trellis-Deliveries", "0") or 0),
        error=h.get("Trellis-Error", ""), time=getattr(msg, "time", None), headers=h, data=msg.data or b"",
    )
