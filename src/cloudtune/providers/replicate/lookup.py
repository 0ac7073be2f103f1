"""Our predictions among Replicate's recent ones, found by the job id tag each carries.

A lookup says what it found and whether the list it read was whole: an id missing from a list
that was cut off (too many pages, or a cursor to another host) may still have a prediction, and
the callers treat it as "cannot tell now", never as "does not exist".
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cloudtune.providers.replicate.client import IncompleteListingError, ReplicateClient
from cloudtune.providers.replicate.predictions import tagged_job_id

# The lookup after an uncertain create asks for predictions created since a little before the
# create was sent (clocks differ), so its pages are few.
LOOKUP_SLACK = timedelta(minutes=5)
LOOKUP_PAGES = 5
# Discovery reads predictions of the last hour: after that Replicate has removed their input,
# and with it our tag.
DISCOVERY_WINDOW = timedelta(hours=1, minutes=5)
DISCOVERY_PAGES = 20


@dataclass(frozen=True)
class Lookup:
    found: dict[str, dict[str, Any]]
    # Why the list was cut off; None when every page was read (or every id was found).
    cut_off: str | None = None

    def unknown(self, job_ids: Collection[str]) -> set[str]:
        """The ids neither found nor ruled out."""
        if self.cut_off is None:
            return set()
        return set(job_ids) - self.found.keys()


async def find_tagged(
    client: ReplicateClient, job_ids: Collection[str], since: datetime, *, pages: int
) -> Lookup:
    """The predictions created since `since` tagged with one of `job_ids` (the first of each,
    newest first). Raises ReplicateError when Replicate cannot be asked."""
    wanted = set(job_ids)
    found: dict[str, dict[str, Any]] = {}
    if not wanted:
        return Lookup(found)
    try:
        async for prediction in client.predictions(max_pages=pages, created_after=since):
            job_id = tagged_job_id(prediction)
            if job_id in wanted and job_id not in found:
                found[job_id] = prediction
                if len(found) == len(wanted):
                    break  # nothing left to look for: whether the list goes on does not matter
    except IncompleteListingError as exc:
        return Lookup(found, cut_off=str(exc))
    return Lookup(found)
