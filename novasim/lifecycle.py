"""Transitional task states and their settling: pausing -> paused after the delay.

Owns the timers and the rule that only the latest task of a server may settle; it must
never check whether a transition is allowed (the action gate did) nor answer HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from novasim.model import SETTLED_POWER, Server, now
from novasim.store import Store


@dataclass(frozen=True)
class Transition:
    """What a task looks like while it runs and where the server ends up."""

    task_state: str | None
    end_vm_state: str | None  # None: the vm_state does not change
    end_power: int | None = None  # None: the usual power state of end_vm_state
    finish: Callable[[Server], None] | None = None  # further end-of-task changes
    delete: bool = False  # the server is gone once the task completes


class Lifecycle:
    """Starts tasks on servers and settles them, at once or after ``delay`` seconds."""

    def __init__(
        self,
        store: Store,
        delay: float,
        on_change: Callable[[Server], None] | None = None,
        on_gone: Callable[[Server], None] | None = None,
    ) -> None:
        self._store = store
        self._delay = delay
        # Nova's notifications: every task state change, and the end of a deleted server.
        self._on_change = on_change or (lambda server: None)
        self._on_gone = on_gone or (lambda server: None)
        self._timers: set[asyncio.TimerHandle] = set()

    def begin(
        self,
        server: Server,
        transition: Transition,
        observe: Callable[[Server], None] | None = None,
    ) -> None:
        """Start ``transition``; ``observe`` sees the server while the task is in flight
        (rebuild answers with that view even when the task settles at once)."""
        server.generation += 1
        server.task_state = transition.task_state
        server.touch()
        self._on_change(server)
        if observe is not None:
            observe(server)
        if self._delay <= 0:
            # Settle before the answer is written, so tests see the end state.
            self._settle(server.id, server.generation, transition)
            return
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            if handle is not None:
                self._timers.discard(handle)
            self._settle(server.id, generation, transition)

        generation = server.generation
        handle = loop.call_later(self._delay, fire)
        self._timers.add(handle)

    def _settle(self, server_id: str, generation: int, transition: Transition) -> None:
        server = self._store.servers.get(server_id)
        # A later task (e.g. os-resetState, delete) supersedes this one.
        if server is None or server.generation != generation:
            return
        if transition.delete:
            self._store.remove(server_id)
            self._on_gone(server)
            return
        if transition.end_vm_state is not None:
            server.vm_state = transition.end_vm_state
        server.task_state = None
        if transition.end_power is not None:
            server.power_state = transition.end_power
        else:
            server.power_state = SETTLED_POWER.get(server.vm_state, server.power_state)
        if transition.finish is not None:
            transition.finish(server)
        server.updated = now()
        self._on_change(server)

    def cancel_all(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
