"""The run journal: every CLI run in one SQLite file, so that no run is ever lost.

``store`` is the file (schema, migrations, permissions, the one-process-per-run lock),
``records`` what a run looks like when read back, ``recorder`` the listener on a run's engine
events that keeps its entry current. The request is stored as ``Options.to_record()`` plus the
prompt; secrets never reach the file.
"""

from __future__ import annotations

from .recorder import RunRecorder
from .records import RUN_STATES, RunRecord, new_run_id, redact_request, redact_url
from .store import SCHEMA_VERSION, Journal, RunBusyError, default_journal_path

__all__ = [
    "SCHEMA_VERSION",
    "RUN_STATES",
    "RunRecord",
    "Journal",
    "RunBusyError",
    "RunRecorder",
    "default_journal_path",
    "new_run_id",
    "redact_request",
    "redact_url",
]
