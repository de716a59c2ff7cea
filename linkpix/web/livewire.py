"""The wire side of live links: multipart parts, what a viewer is shown next, and the one loop that sends.

waitress gives every request a worker thread for as long as its answer lasts; a live link lasts as long as
its run (seconds to minutes), so 100 viewers would hold 100 of the 48 threads and cached links would wait
behind them. Instead the view writes the head and the first card itself, then hands a duplicate of the
connection's socket to `LiveWriter`: one thread running an asyncio loop that serves every live viewer of
the process (a viewer is a coroutine and a few KB), and the worker thread goes back to the pool at once.

A viewer never queues frames: `Cursor` compares what it has shown with the feed's newest state and sends
only the newest frame, at most `fps` a second, so a slow viewer skips frames instead of holding memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from linkpix.pipeline.previews import Feed

log = logging.getLogger(__name__)

BOUNDARY = "linkpix-live-frame"
SEND_TIMEOUT = 30.0  # s a viewer may take to accept one part before it is dropped
CONTENT_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY}"

ErrorPicture = Callable[[Feed], bytes]  # the error picture of a failed feed (drawn by web/live.py)


def opening() -> bytes:
    """What comes before the first part: the first boundary line."""
    return f"--{BOUNDARY}\r\n".encode("ascii")


def part(content_type: str, data: bytes, headers: dict[str, str] | None = None, last: bool = False) -> bytes:
    """One part and the boundary after it: a browser shows a part as soon as the boundary that ends it
    arrives, so it is sent with the part rather than before the next one."""
    head = [f"Content-Type: {content_type}", f"Content-Length: {len(data)}"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    end = f"\r\n--{BOUNDARY}--\r\n" if last else f"\r\n--{BOUNDARY}\r\n"
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data + end.encode("ascii")


class Cursor:
    """What one viewer has been shown of a feed, and so what it is shown next."""

    def __init__(self, feed: Feed, fps: float, error_picture: ErrorPicture) -> None:
        self.feed = feed
        self.interval = 1.0 / fps if fps > 0 else 0.0
        self._error_picture = error_picture
        self.shown_version = -1
        self.shown_frame = 0
        self.last_sent = 0.0
        self.last_frame = 0.0
        self.done = False
        self.parts = 0
        self.resting_until = 0.0  # monotonic time before which only the run's end is worth a wake-up (set while
        # a frame waits for the rate limit: a newer frame meanwhile changes nothing, the newest goes at its end)

    def first(self) -> bytes:
        """The opening boundary and the card of the feed's status now (or the end, if it is over)."""
        return opening() + (self.next_part(0.0)[0] or b"")

    def needs_drawing(self) -> bool:
        """Would the next part be drawn or re-encoded here (a card, the error picture, a heavy frame)? Then
        the caller makes it off the loop's thread."""
        feed = self.feed
        frame = feed.frame
        if frame is not None and frame.seq > self.shown_frame and not feed.frame_ready(frame):
            return True
        return feed.error is not None or (self.shown_frame == 0 and feed.card_stale())

    def next_part(self, now: float) -> tuple[bytes | None, float | None]:
        """(the next part, or None) and, when a frame waits for the rate limit, how long until it may go."""
        feed = self.feed
        if feed.final is not None and feed.result is not None:
            self.done = True
            return self._sent(part(feed.result.content_type, feed.final, {"X-LinkPix-Part": "final"}, last=True),
                              now), None
        if feed.error is not None:
            self.done = True
            return self._sent(part("image/png", self._error_picture(feed), {"X-LinkPix-Part": "error"},
                                   last=True), now), None
        frame = feed.frame
        if frame is not None and frame.seq > self.shown_frame:
            due = self.last_frame + self.interval - now  # a card just before does not hold the first frame back
            if due > 0:
                self.resting_until = now + due
                return None, due
            self.last_frame = now
            self.shown_frame, self.shown_version = frame.seq, feed.status.version
            headers = {"X-LinkPix-Part": "preview", "X-LinkPix-Received": f"{frame.received:.6f}"}
            if frame.step and frame.total:
                headers["X-LinkPix-Step"] = f"{frame.step}/{frame.total}"
            return self._sent(part(frame.mime, feed.frame_bytes(frame), headers), now), None
        if self.shown_frame == 0 and feed.status.version != self.shown_version:  # cards until frames flow
            due = self.last_sent + self.interval - now
            if due > 0:  # no rest from wake-ups here: a first frame arriving meanwhile goes at once
                return None, due
            version, card = feed.card()
            self.shown_version = version
            return self._sent(part("image/jpeg", card, {"X-LinkPix-Part": "card",
                                                        "X-LinkPix-Status": feed.status.headline()}), now), None
        return None, None

    def _sent(self, data: bytes, now: float) -> bytes:
        self.last_sent, self.parts, self.resting_until = now, self.parts + 1, 0.0
        return data

    def worth_waking(self) -> bool:
        """Is a change of the feed worth waking this viewer for? Not while it rests for the rate limit
        (it wakes when the rest is over and takes the newest frame then), unless the run has ended: with
        20 steps a second and `live_fps` 4, four in five frames would wake every viewer for nothing."""
        return self.feed.over or time.monotonic() >= self.resting_until


class LiveWriter:
    """One asyncio loop on one thread sending every live viewer's parts (see the module docstring)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._per_user: dict[str, int] = {}
        self._counts = threading.Lock()

    def try_slot(self, user: str, total: int, per_user: int) -> bool:
        """Take a viewer slot unless the process (`total`) or this user (`per_user`) is at its bound."""
        with self._counts:
            if sum(self._per_user.values()) >= total or self._per_user.get(user, 0) >= per_user:
                return False
            self._per_user[user] = self._per_user.get(user, 0) + 1
            return True

    def release_slot(self, user: str) -> None:
        with self._counts:
            left = self._per_user.get(user, 0) - 1
            if left > 0:
                self._per_user[user] = left
            else:
                self._per_user.pop(user, None)

    def open_slots(self) -> int:
        with self._counts:
            return sum(self._per_user.values())

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=loop.run_forever, name="live-writer", daemon=True)
                self._thread.start()
                self._loop = loop
            return self._loop

    def hand_over(self, sock: socket.socket, cursor: Cursor, user: str) -> Future[Any]:
        """Serve the rest of a live answer on the loop; the slot taken for `user` is released at its end."""
        loop = self._ensure_loop()
        return asyncio.run_coroutine_threadsafe(self._serve(sock, cursor, user), loop)

    def hand_over_answer(self, sock: socket.socket, feed: Feed, render: Callable[[], tuple[str, bytes]],
                         user: str, on_end: Callable[[str], None]) -> Future[Any]:
        """Write one whole answer on `sock` once `feed` is over (web/parked.py): `render()` gives its status
        and bytes, `on_end(status)` is told when it is sent (or the client is gone); the slot taken for
        `user` is released then."""
        loop = self._ensure_loop()
        return asyncio.run_coroutine_threadsafe(self._answer(sock, feed, render, user, on_end), loop)

    async def _answer(self, sock: socket.socket, feed: Feed, render: Callable[[], tuple[str, bytes]],
                      user: str, on_end: Callable[[str], None]) -> None:
        loop = asyncio.get_running_loop()
        over = asyncio.Event()

        def wake() -> None:
            if feed.over:
                loop.call_soon_threadsafe(over.set)

        feed.subscribe(wake)
        status, writer = "-", None
        try:
            if not feed.over:  # subscribed first: an end in between is not missed
                await over.wait()
            status, data = await loop.run_in_executor(None, render)  # Flask's own answer, off this loop
            sock.setblocking(False)
            _reader, writer = await asyncio.open_connection(sock=sock)
            writer.write(data)
            await asyncio.wait_for(writer.drain(), SEND_TIMEOUT)
        except (TimeoutError, OSError) as exc:
            log.debug("a parked request's client left: %s", exc)
        except Exception:  # a bug: the client's connection is closed, the log says why
            log.exception("the answer of a parked request could not be made")
        finally:
            feed.unsubscribe(wake)
            if writer is not None:
                writer.close()
            else:
                sock.close()
            self.release_slot(user)
            on_end(status)

    def close(self) -> None:
        """End every stream (each viewer's connection is closed) and the loop's thread."""
        with self._lock:
            loop, self._loop, thread = self._loop, None, self._thread
        if loop is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_cancel_all(), loop).result(5.0)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(5.0)
        if not loop.is_running():
            loop.close()

    async def _serve(self, sock: socket.socket, cursor: Cursor, user: str) -> None:
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def poke() -> None:
            if cursor.worth_waking():
                loop.call_soon_threadsafe(wake.set)

        cursor.feed.subscribe(poke)
        writer: asyncio.StreamWriter | None = None
        try:
            sock.setblocking(False)
            reader, writer = await asyncio.open_connection(sock=sock)
            left = asyncio.ensure_future(_until_closed(reader))
            try:
                await self._pump(loop, cursor, writer, wake, left)
            finally:
                left.cancel()
        except (TimeoutError, OSError) as exc:
            log.debug("a live viewer left: %s", exc)
        except Exception:
            log.exception("serving a live viewer failed")
        finally:
            cursor.feed.unsubscribe(poke)
            self.release_slot(user)
            if writer is not None:
                writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), 2.0)
            else:
                sock.close()

    @staticmethod
    async def _pump(loop: asyncio.AbstractEventLoop, cursor: Cursor, writer: asyncio.StreamWriter,
                    wake: asyncio.Event, left: asyncio.Future[None]) -> None:
        while not cursor.done:
            wake.clear()
            if cursor.needs_drawing():  # a card or the error picture: drawn off this thread, once per feed
                data, wait = await loop.run_in_executor(None, cursor.next_part, time.monotonic())
            else:
                data, wait = cursor.next_part(time.monotonic())
            if data is not None:
                writer.write(data)
                await asyncio.wait_for(writer.drain(), SEND_TIMEOUT)
                continue
            waiter = asyncio.ensure_future(wake.wait())
            try:
                await asyncio.wait([waiter, left], timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            if left.done():
                return


async def _cancel_all() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _until_closed(reader: asyncio.StreamReader) -> None:
    """Returns when the viewer closes its side (what it may send meanwhile is read and dropped)."""
    while await reader.read(4096):
        pass
