"""How a run stops before its end: a signal, a non-finite number or a failed write, each told in one line.

SIGTERM (a cluster scheduler, `timeout`, `docker stop`) and SIGINT (Ctrl-C) raise `Interrupted` in the
main thread while a run is under `stop_on_signals()`: the step under way is abandoned (a killed step
changes nothing a checkpoint holds) except a checkpoint write, which `signals_held()` lets finish
first. The script then prints where the run stopped and the command that continues it, and exits
with 128 + the signal's number, as a shell reports a process a signal ended.

A non-finite loss or weight (`seqgan_env.finite.NonFiniteError`) and a write the system refuses (a
full disk, a folder made read-only: `OSError`) end the run with exit code 1 and one `error:` line; the
run folder keeps its last checkpoint, and no temporary file (`seqgan_env.files.write_atomically`).
"""

from __future__ import annotations

import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from seqgan_env.finite import NonFiniteError

SIGNALS = (signal.SIGINT, signal.SIGTERM)
TRAIN = Path(__file__).resolve().parent


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived: the run stops. A KeyboardInterrupt, so that code which cleans up
    after Ctrl-C (progress bars, Ray) does so for SIGTERM too."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process ended by it."""
        return 128 + self.signum


_held = 0  # depth of `signals_held` blocks
_pending: list[int] = []  # signals that arrived inside them
_taken: list[list[signal.Signals]] = []  # the signals each open `stop_on_signals` block handles


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _held:
        _pending.append(signum)
        return
    raise Interrupted(signum)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Inside the block SIGTERM and SIGINT raise `Interrupted` (in the main thread; elsewhere signal
    handlers cannot be set and nothing changes). A signal the process was started to ignore (SIGINT
    in a shell's background job, `nohup`) stays ignored, as Python leaves it. The previous handlers
    are back after the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    taken = [signum for signum in SIGNALS if signal.getsignal(signum) is not signal.SIG_IGN]
    previous = {signum: signal.signal(signum, _on_signal) for signum in taken}
    _taken.append(taken)
    try:
        yield
    finally:
        _taken.pop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def restore_signal_handlers() -> None:
    """Inside `stop_on_signals()`, take SIGTERM and SIGINT back from a library that set its own
    handlers meanwhile (`ray.init` sets one that exits without a word); an ignored one stays ignored."""
    if threading.current_thread() is threading.main_thread() and _taken:
        for signum in _taken[-1]:
            signal.signal(signum, _on_signal)


@contextmanager
def signals_held() -> Iterator[None]:
    """A signal that arrives inside the block (a checkpoint write) takes effect when the block ends,
    so what it writes is written whole."""
    global _held
    _held += 1
    try:
        yield
    except BaseException:
        _held -= 1
        if not _held:
            _pending.clear()  # the block's own error stops the run already
        raise
    _held -= 1
    if not _held and _pending:
        signum = _pending[0]
        _pending.clear()
        raise Interrupted(signum)


def command(script: str, *args: str) -> str:
    """The shell command that runs train/`script` with `args`, from the current folder."""
    path = TRAIN / script
    try:
        shown = str(path.relative_to(Path.cwd()))
    except ValueError:
        shown = str(path)
    return shlex.join(["python", shown, *args])


def cause(err: BaseException) -> str:
    """The start of the one line of a run that stopped: the signal, non-finite number or failed write."""
    if isinstance(err, Interrupted):
        return f"stopped by {err.name}"
    if isinstance(err, OSError):
        reason = err.strerror or str(err) or type(err).__name__
        return f"error: {reason}: {err.filename}" if err.filename else f"error: {reason}"
    return f"error: {err}"


STOPS = (Interrupted, NonFiniteError, OSError)  # what `run_stoppable` turns into one line


def run_stoppable(body: Callable[[], None], message: Callable[[BaseException], str]) -> int | None:
    """Run `body` under `stop_on_signals()`. None when it finished; else, for a signal, a non-finite
    number or a failed write (`STOPS`), print `message(err)` (one line) and return the exit code:
    128 + the signal's number, or 1."""
    with stop_on_signals():
        try:
            body()
            return None
        except STOPS as err:
            stop = err
    print(message(stop), file=sys.stderr, flush=True)
    return stop.exit_code if isinstance(stop, Interrupted) else 1
