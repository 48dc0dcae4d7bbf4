"""The event loop of the blocking facade, run by the thread that waits on it: no thread hop on the way.

:mod:`.sync` drives an asyncio client from blocking code. Run in a background
thread, its loop cost each call two thread hops, a wake-up of the loop's
thread and one of the caller with the answer: together, more than the rest of
a call on a loaded machine (issue 13). Here a thread that waits on the loop
runs it itself, until what it waits for is done, whenever no other thread is
running it:

- one thread calling, call after call, runs the loop in turn for each: no hop;
- a thread that finds the loop run by another hands its work over
  (``call_soon_threadsafe``) and waits for it; if that thread lets go of the
  loop first, the waiting one runs it in its turn;
- a thread that cannot run the loop hands its work over too: one that runs an
  event loop of its own (as Jupyter's does);
- when no thread has run the loop for ``idle_s``, a background thread runs it,
  so that between calls the connection is still read (pings answered, the
  server's close seen, events buffered); a caller takes it back with one hop.

Ctrl-C while the main thread runs the loop does what ``asyncio.run`` does: it
cancels the work in progress (so an interrupted call sends ``rpc.cancel``), lets
it finish, and then raises KeyboardInterrupt, never in the middle of a callback.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["DEFAULT_IDLE_S", "Answer", "SharedLoop"]

T = TypeVar("T")

# How long the loop may go unrun before the background thread runs it: long beside a
# call (a burst of calls never hands the loop to it), short beside keepalive pings.
DEFAULT_IDLE_S = 0.05


class SharedLoop:
    """An event loop run by whichever thread waits on it, or by a background thread when none does.

    Args:
        loop_factory: makes the loop (asyncio's own by default).
        name: the background thread's name.
        idle_s: how long the loop may go unrun before the background thread runs it.
        closed: the exception work given after :meth:`stop` fails with (RuntimeError by default).
    """

    def __init__(
        self,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
        name: str = "rpc_client loop",
        idle_s: float = DEFAULT_IDLE_S,
        closed: Callable[[], BaseException] = lambda: RuntimeError("the loop is stopped"),
    ) -> None:
        self.loop = (loop_factory or asyncio.new_event_loop)()
        self._closed_error = closed
        self._idle_s = idle_s
        # The condition's own lock, entered directly where no wait is needed: the same lock,
        # without Condition's two Python-level calls, twice on every call (issue 13).
        self._lock = threading.Lock()
        self._state = threading.Condition(self._lock)
        self._runner: int | None = None  # the ident of the thread running the loop now
        self._free_since = time.monotonic()
        self._waiting = 0  # threads waiting for work they handed over
        self._wanted = False  # a thread that cannot run the loop needs it run now
        self._turns = 0  # how many times the background thread has taken the loop
        self._stopping = False
        self._closed = False
        self._thread = threading.Thread(target=self._background, name=name, daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether the loop is still there to run work (not :meth:`stop`-ped)."""
        return not self._stopping

    def in_loop(self) -> bool:
        """Whether the calling code runs on this loop (a callback), where blocking on it would never end."""
        return asyncio._get_running_loop() is self.loop

    def refuse_in_loop(self) -> None:
        """Raise RuntimeError if the calling code runs on this loop: waiting for the loop there would never end."""
        if self.in_loop():
            raise RuntimeError("cannot block on the client from its own loop thread (a callback)")

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop to its end and return what it returns (or raise what it raises).

        Raises:
            RuntimeError: called from the loop itself (a callback).
            the ``closed`` exception: called after :meth:`stop`.
            KeyboardInterrupt: Ctrl-C, once the work has been cancelled.
        """
        if self._stopping:
            coro.close()
            raise self._closed_error()
        running = asyncio._get_running_loop()
        if running is self.loop:
            coro.close()
            self.refuse_in_loop()
        if running is None and self._take():
            try:
                with self._sigint() as interrupted:  # before the task exists: Ctrl-C from here on cancels it
                    return self._run_until(self.loop.create_task(coro), interrupted)
            finally:
                self._let_go()
        return self._hand_over(coro, may_run=running is None)

    def call(
        self, begin: Callable[[Answer], Callable[[], None] | None], slow: Callable[[], Coroutine[Any, Any, T]]
    ) -> Any:
        """One call of the blocking client, with no task and no coroutine when this thread may run the loop.

        ``begin(answer)`` sends the call, arranging for ``answer`` to be set from the loop
        when the call ends; it returns what to call once it has (to cancel the call's timer,
        and the call on the server if it was left unanswered), or None when it cannot start
        now (no connection). The loop then runs in this thread until ``answer`` is set: the
        callback that sets it stops the loop, so this thread goes on in that very loop turn.
        Otherwise ``slow()`` is run as :meth:`run` runs it.

        Returns:
            the answer's result.

        Raises:
            the answer's exception; as :meth:`run` otherwise.
        """
        if self._stopping or asyncio._get_running_loop() is not None or not self._take():
            return self.run(slow())
        try:
            answer = Answer(self.loop)
            with self._sigint() as interrupted:  # before the call is sent: Ctrl-C from here on cancels it
                interrupted.then = self._stop_running
                leave = begin(answer)
                if leave is None:
                    return self._run_until(self.loop.create_task(slow()), interrupted)
                try:
                    while not answer.done() and not interrupted:
                        self.loop.run_forever()  # stopped by answer.set_result(), set_exception() or Ctrl-C
                finally:
                    answer.abandon()
                    leave()
                    if not answer.answered or answer.exception() is not None:
                        self._turn()  # rpc.cancel, queued by leave(), goes out before the loop is let go
            if interrupted:
                raise KeyboardInterrupt
            return answer.result()
        finally:
            self._let_go()

    def stop(self) -> None:
        """Stop the background thread and close the loop, once no thread runs it; stopping twice is harmless.

        Work still handed over and never run then fails with the ``closed`` exception.

        Raises:
            RuntimeError: called from the loop itself (a callback).
        """
        self.refuse_in_loop()
        with self._state:
            if self._stopping:
                return
            self._stopping = True
            self._state.notify_all()
            if self._runner == self._thread.ident:
                self.loop.call_soon_threadsafe(self._stop_background)
        self._thread.join()  # the background thread closes the loop before it ends (see _close)

    # -- whose turn ---------------------------------------------------------------

    def _take(self) -> bool:
        """Become the thread running the loop, if no thread runs it now."""
        with self._lock:
            if self._runner is not None:
                return False
            self._runner = threading.get_ident()
            return True

    def _let_go(self) -> None:
        with self._lock:
            self._runner = None
            self._free_since = time.monotonic()
            if self._waiting or self._stopping:
                self._state.notify_all()  # a waiting thread may run it now; stop() may go on

    def _hand_over(self, coro: Coroutine[Any, Any, T], *, may_run: bool) -> T:
        """Give the work to the loop, wherever it runs, and wait for it, running the loop here once it is free.

        Args:
            may_run: this thread may run the loop (it runs no loop of its own).
        """
        with self._state:  # not once the loop is closed (see _close)
            if self._closed:
                coro.close()
                raise self._closed_error()
            done: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        done.add_done_callback(self._wake)
        background = self._thread.ident
        asked = -1  # the background thread's turn at the loop that was asked to give it back
        ran = False
        try:
            with self._state:
                self._waiting += 1
                try:
                    # Once closed, the background thread ends the work handed over: wait for that.
                    while not done.done():
                        if self._runner is None and may_run:
                            self._runner = threading.get_ident()
                            ran = True
                            break
                        if self._runner is None:  # only the background thread can run it for us
                            self._wanted = True
                            self._state.notify_all()
                        elif self._runner == background and may_run and asked != self._turns and not self._stopping:
                            asked = self._turns
                            self.loop.call_soon_threadsafe(self._stop_background)
                        self._state.wait()
                finally:
                    self._waiting -= 1
            if ran:
                try:
                    with self._sigint() as interrupted:
                        self._run_until(asyncio.wrap_future(done, loop=self.loop), interrupted)
                finally:
                    self._let_go()
        except BaseException:
            done.cancel()  # Ctrl-C while waiting: the work is cancelled on the loop too
            raise
        if done.cancelled() and self._closed:
            raise self._closed_error()  # cancelled by _close
        return done.result()

    def _wake(self, _: object) -> None:
        with self._state:
            self._state.notify_all()

    def _stop_background(self) -> None:
        # Queued from another thread; by the time it runs, the loop may run in yet another, or be closing.
        if threading.get_ident() == self._thread.ident and not self._closed:
            self.loop.stop()

    # -- running it --------------------------------------------------------------------

    def _run_until(self, future: asyncio.Future[T], interrupted: _Interrupted) -> T:
        """Run the loop in this thread until ``future`` is done; Ctrl-C (in ``interrupted``) cancels it first."""
        interrupted.then = future.cancel
        if interrupted:  # Ctrl-C came before the future was there to cancel
            future.cancel()
        try:
            result = self.loop.run_until_complete(future)
        except asyncio.CancelledError:
            if interrupted:
                raise KeyboardInterrupt from None
            raise
        if interrupted:
            raise KeyboardInterrupt  # the work took the cancellation and returned all the same
        return result

    def _stop_running(self) -> None:
        if self.loop.is_running():  # stopped now, not at the next run
            self.loop.stop()

    def _turn(self) -> None:
        """Run the callbacks already queued on the loop (what was just written goes out), in this thread."""
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()

    def _sigint(self) -> _Interrupted:
        """Within its ``with`` block, Ctrl-C calls the value's ``then`` (on the first) and wakes the loop.

        Only in the main thread, and only when SIGINT has Python's default handler (which
        raises KeyboardInterrupt wherever the main thread is, in the middle of a callback of
        the loop too). The value is true once Ctrl-C came: raise KeyboardInterrupt then.
        """
        return _Interrupted(self.loop)

    def _background(self) -> None:
        """Run the loop whenever no thread has for ``idle_s``, or a thread needs it run and cannot run it itself."""
        me = threading.get_ident()
        state = self._state
        while True:
            with state:
                while True:
                    if self._stopping:
                        break
                    if self._runner is None:
                        idle = time.monotonic() - self._free_since
                        if self._wanted or idle >= self._idle_s:
                            break
                        state.wait(self._idle_s - idle)
                    else:
                        state.wait(self._idle_s)
                if self._stopping:
                    break
                self._runner = me
                self._wanted = False
                self._turns += 1
            try:
                self.loop.run_forever()  # until a thread wants the loop back (_stop_background)
            finally:
                self._let_go()
        self._close()

    def _close(self) -> None:
        """Once every thread has let go of the loop, take it for good, end what is on it and close it.

        Here, in the background thread, which runs no other loop: the thread calling
        :meth:`stop` may run one (Jupyter), where running this loop would raise.
        Work handed over before that is run to its end, or cancelled as ``asyncio.run``
        cancels what is left (its thread then gets the ``closed`` exception).
        """
        with self._state:
            while self._runner is not None:  # another thread still runs it
                self._state.wait()
            self._runner = threading.get_ident()  # for good: no thread takes it from now on
            self._closed = True  # and no work is handed over from now on
        loop = self.loop
        try:
            loop.run_until_complete(_end_tasks())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
            with self._state:
                self._state.notify_all()


def _nothing() -> None:
    pass


async def _end_tasks() -> None:
    """Cancel the loop's other tasks and wait for them, as ``asyncio.run`` does before it closes its loop."""
    await asyncio.sleep(0)  # work handed over just before becomes a task
    tasks = asyncio.all_tasks() - {asyncio.current_task()}
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0)  # their threads' futures are set by callbacks of the tasks'


class _Interrupted:
    """Whether Ctrl-C came while the loop ran, and what to do when it comes (``then``); see SharedLoop._sigint.

    A class rather than a generator-based context manager: it is entered on every call, and
    in any thread but the main one it does nothing at all (issue 13).
    """

    __slots__ = ("_catching", "_loop", "came", "then")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._catching = False
        self.came = False
        self.then: Callable[[], object] | None = None

    def __bool__(self) -> bool:
        return self.came

    def __enter__(self) -> _Interrupted:
        if threading.get_ident() == threading.main_thread().ident and (
            signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            signal.signal(signal.SIGINT, self._on_sigint)
            self._catching = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._catching:
            self._catching = False
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def _on_sigint(self, signum: int, frame: object) -> None:
        if self.came:
            raise KeyboardInterrupt  # a second Ctrl-C: the work did not end on the first
        self.came = True
        if self.then is not None:
            self.then()
        self._loop.call_soon_threadsafe(_nothing)  # wake the loop from its wait


class Answer:
    """A call's outcome for the thread that runs the loop until it comes: setting it stops the loop.

    What :class:`~rpc_client.pending.PendingCalls` needs of a future (``done``,
    ``cancelled``, ``exception``, ``set_result``, ``set_exception``), and no more: no
    callbacks, so no loop turn between the answer and the thread waiting for it.
    """

    __slots__ = ("_error", "_loop", "_value", "answered")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop: asyncio.AbstractEventLoop | None = loop
        self._value: Any = None
        self._error: BaseException | None = None
        self.answered = False  # set, rather than abandoned

    def done(self) -> bool:
        return self._loop is None

    def cancelled(self) -> bool:
        return False

    def exception(self) -> BaseException | None:
        return self._error

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value

    def set_result(self, value: Any) -> None:
        loop = self._loop
        if loop is not None:
            self._value, self._loop, self.answered = value, None, True
            loop.stop()

    def set_exception(self, error: BaseException) -> None:
        loop = self._loop
        if loop is not None:
            self._error, self._loop, self.answered = error, None, True
            loop.stop()

    def abandon(self) -> None:
        """Its thread no longer waits: it is done, and setting it later does nothing."""
        self._loop = None
