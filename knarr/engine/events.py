"""The engine's event bus: Docker's event messages, a short history for `since`,
and a queue per subscriber for streaming."""

import asyncio
import time

__all__ = ["EventBus", "matches"]

_HISTORY = 1024


class EventBus:
    """Publish Docker events; subscribers get every event from then on."""

    def __init__(self) -> None:
        self.history: list[dict] = []
        self.subscribers: set[asyncio.Queue] = set()

    def publish(self, kind: str, action: str, actor_id: str, attributes: dict) -> dict:
        """Record and hand out one event."""
        now = time.time_ns()
        event = {"Type": kind, "Action": action, "Actor": {"ID": actor_id,
                                                           "Attributes": attributes},
                 "scope": "local", "time": now // 1_000_000_000, "timeNano": now}
        if kind == "container":
            event.update(status=action, id=actor_id, **{"from": attributes.get("image", "")})
        self.history.append(event)
        del self.history[:-_HISTORY]
        for queue in self.subscribers:
            queue.put_nowait(event)
        return event

    def subscribe(self) -> asyncio.Queue:
        """A queue that receives every event from now on."""
        queue: asyncio.Queue = asyncio.Queue()
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        """Stop feeding a queue."""
        self.subscribers.discard(queue)


def matches(event: dict, filters: dict[str, list[str]]) -> bool:
    """Whether an event passes Docker's event filters (type, event, container, image, label)."""
    actor = event["Actor"]
    attrs = actor["Attributes"]
    checks = {
        "type": [event["Type"]],
        "event": [event["Action"], event["Action"].split(":")[0]],
        "container": [actor["ID"], actor["ID"][:12], attrs.get("name", "")] if
        event["Type"] == "container" else [],
        "image": [attrs.get("image", "")],
        "label": [f"{k}={v}" for k, v in attrs.items()] + list(attrs),
    }
    for key, wanted in filters.items():
        have = checks.get(key)
        if have is None:
            continue
        if key == "container" and event["Type"] != "container":
            return False
        if not any(w in have for w in wanted):
            return False
    return True
