"""Announcements one app makes and others act on, without the announcing app importing them.

``run_finished`` is sent by the runs services inside the transaction that saves a run's final
status, so that what a subscriber records (the webhooks outbox) commits or rolls back with it.
Subscribers register in their ``AppConfig.ready``; they receive a plain ``RunFinished``, never a
model instance.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RunFinished:
    run_pk: int
    run_id: str
    pipeline_pk: int
    status: str
    # The run as announcements carry it (its webhook representation), already rendered.
    data: dict[str, Any]


class Hook[E]:
    def __init__(self, name: str) -> None:
        self.name = name
        self._subscribers: list[Callable[[E], None]] = []

    def subscribe(self, subscriber: Callable[[E], None]) -> None:
        if subscriber not in self._subscribers:
            self._subscribers.append(subscriber)

    def send(self, event: E) -> None:
        for subscriber in self._subscribers:
            subscriber(event)


run_finished: Hook[RunFinished] = Hook("run_finished")
