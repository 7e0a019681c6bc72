"""Who is knocking: a storm of refused API keys in the server's request lines.

The server logs one line per request (docs/contract.md); a request refused for its key reads
`request id=... route=/generate status=401 ... auth=rejected client=203.0.113.9`. Many of
them from one address is someone trying keys, or a client left with an old key after a
rotation: an info finding with the count, whatever else the log says. Pure: text in.
"""

from __future__ import annotations

import re
from collections import Counter

from intelligensi_deploy.diagnosis.findings import Finding, make_finding

STORM_THRESHOLD = 20  # refused requests from one address before it is news
_REFUSED = re.compile(r"\brequest\b.*\bstatus=401\b.*\bauth=(?:missing|rejected)\b"
                      r".*\bclient=(\S+)")


def unauthorized_storm(lines: list[str], threshold: int = STORM_THRESHOLD) -> Finding | None:
    """The info finding for the address with the most 401s, when it has `threshold` or
    more; None otherwise."""
    refused = Counter(m.group(1) for line in lines if (m := _REFUSED.search(line)))
    if not refused:
        return None
    address, count = refused.most_common(1)[0]
    if count < threshold:
        return None
    total = (f"{sum(refused.values())} refused in this log, from {len(refused)} "
             f"address{'es' if len(refused) > 1 else ''}")
    evidence = [f"{count} requests refused with 401 from {address} ({total})"]
    others = [f"{n} from {a}" for a, n in refused.most_common(4)[1:]]
    if others:
        evidence.append("then " + ", ".join(others))
    return make_finding("unauthorized-storm", evidence)
