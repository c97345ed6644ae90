"""Overlapping reading, computing and writing: three stages, two bounded queues.

One reader thread runs the producer (the only thread touching the reader), the
caller's thread computes, one writer thread runs the consumer (the only thread
touching the writer): GDAL datasets are never shared between threads (G14).
An exception in any stage stops the other two and is raised in the caller;
so is ``KeyboardInterrupt``, which only the caller's thread receives.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Callable, Generic, Iterable, Iterator, TypeVar

__all__ = ["run_pipeline"]

In = TypeVar("In")
Out = TypeVar("Out")
POLL_SECONDS = 0.1


class _Stopped(Exception):
    """Another stage failed or the run was cancelled."""


@dataclass
class _Failure:
    error: BaseException


class _Done:
    """End-of-stream marker."""


DONE = _Done()


@dataclass
class _Channel(Generic[In]):
    """A bounded queue whose ends give up when the run stops."""

    items: "queue.Queue[object]"
    stop: threading.Event

    def put(self, item: object) -> None:
        while True:
            if self.stop.is_set():
                raise _Stopped()
            try:
                self.items.put(item, timeout=POLL_SECONDS)
                return
            except queue.Full:
                continue

    def get(self) -> object:
        while True:
            if self.stop.is_set():
                raise _Stopped()
            try:
                return self.items.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue


def _join(*threads: threading.Thread) -> None:
    """Wait for every thread, even when a stop signal interrupts the wait; then let the interrupt go on.

    A thread left running could still be writing into an output that the
    caller is about to remove.
    """
    interrupted: KeyboardInterrupt | None = None
    for thread in threads:
        while thread.is_alive():
            try:
                thread.join()
            except KeyboardInterrupt as error:
                interrupted = interrupted or error
    if interrupted is not None:
        raise interrupted


def run_pipeline(
    produce: Iterable[In],
    compute: Callable[[Iterator[In]], Iterator[Out]],
    consume: Callable[[Out], None],
    depth: int,
) -> None:
    """Run ``consume(y) for y in compute(produce)`` with each stage on its own thread.

    Args:
        produce: iterated on the reader thread.
        compute: called on the caller's thread with an iterator over the
            produced items; yields items for the consumer.
        consume: called on the writer thread, in order.
        depth: capacity of each queue (bounds the items in flight).

    Raises:
        Whatever a stage raised (the first failure), after every thread has stopped.
    """
    stop = threading.Event()
    inbox: _Channel[In] = _Channel(queue.Queue(maxsize=depth), stop)
    outbox: _Channel[Out] = _Channel(queue.Queue(maxsize=depth), stop)
    failures: list[BaseException] = []

    def read() -> None:
        try:
            for item in produce:
                inbox.put(item)
            inbox.put(DONE)
        except _Stopped:
            return
        except BaseException as error:  # handed to the caller's thread
            try:
                inbox.put(_Failure(error))
            except _Stopped:
                return

    def write() -> None:
        try:
            while (item := outbox.get()) is not DONE:
                consume(item)  # type: ignore[arg-type]
        except _Stopped:
            return
        except BaseException as error:  # raised in the caller's thread
            failures.append(error)
            stop.set()

    def incoming() -> Iterator[In]:
        while (item := inbox.get()) is not DONE:
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]

    reader = threading.Thread(target=read, name="srrestore-reader", daemon=True)
    writer = threading.Thread(target=write, name="srrestore-writer", daemon=True)
    reader.start()
    writer.start()
    try:
        for result in compute(incoming()):
            outbox.put(result)
        outbox.put(DONE)
        writer.join()
    except _Stopped:
        pass
    except BaseException:
        stop.set()
        raise
    finally:
        stop.set()
        _join(reader, writer)
    if failures:
        raise failures[0]
