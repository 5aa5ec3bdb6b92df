"""What a benchmark worker times: one subject of a task (shared by both backends' workers)."""


class Subject:
    """``run_once()`` runs the work once and returns the seconds it took (timed inside);
    ``meta`` describes it (FLOPs, shapes) for the report."""

    def __init__(self, run, meta):
        self._run, self.meta = run, meta

    def run_once(self):
        return self._run()


class Unavailable(Exception):
    """Raised by a backend's ``make`` when a subject cannot run on this machine (e.g.
    torch.compile without a working C++ compiler): the worker answers "skipped" with
    the message as the reason, and the driver records it instead of an error."""
