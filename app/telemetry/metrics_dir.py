"""Where processes that serve one port share their metrics (``POLLY_METRICS_DIR``).

Separate from the metrics themselves on purpose: prometheus-client decides where values live
when it is first imported, so this must run before anything imports it, and so must not
import it either.
"""

from __future__ import annotations

import os
from pathlib import Path

# prometheus-client's own variable for its multiprocess mode.
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def share_metrics(directory: Path | None) -> None:
    """Keep this process's metric values in ``directory``, with its siblings'."""
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROCESS_VARIABLE] = str(directory)
