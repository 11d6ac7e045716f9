"""Retention: unreviewed drawings older than a period are deleted; labelled ones are kept for ever.

Labelled (reviewed) drawings are the training data, so they stay; model versions are another
table and are never touched. Run daily by beat (worker.tasks.purge_old_drawings, RETAIN_DAYS)
and by hand with `manage.py purge_drawings --older-than DAYS`.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone

from recognizer.models import Drawing

log = logging.getLogger(__name__)
# Rows per DELETE: each batch is its own short transaction, so the web and the workers, which
# write drawings all the time, never wait behind one long delete (SQLite has one writer).
BATCH = 500


def purge(older_than_days: int, batch: int = BATCH) -> int:
    """Delete the unreviewed drawings received more than `older_than_days` days ago; how many were deleted."""
    if older_than_days <= 0:
        raise ValueError("older_than_days must be at least 1")
    cutoff = timezone.now() - timedelta(days=older_than_days)
    old = Drawing.objects.unreviewed().filter(created_at__lt=cutoff)
    deleted = 0
    while ids := list(old.values_list("pk", flat=True)[:batch]):
        # With the same conditions again: a drawing labelled since it was read is kept.
        count, _ = old.filter(pk__in=ids).delete()
        deleted += count
    log.info("deleted %d unreviewed drawing(s) older than %d day(s)", deleted, older_than_days)
    return deleted
