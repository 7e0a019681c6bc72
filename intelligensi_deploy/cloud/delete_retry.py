"""Deleting a Lambda object that an instance still holds: a ruleset attached to it, a file
system it mounts. Lambda refuses (`...-in-use`) until the instances are terminated, and a
terminating one still counts: ask again after a pause, a bounded number of times."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from intelligensi_deploy.cloud.lambda_errors import LambdaAPIError, ObjectNotFound


def delete_when_free(delete: Callable[[], object], in_use: type[LambdaAPIError], *,
                     attempts: int, delay_s: float, pause: Callable[[float], None],
                     on_wait: Callable[[str], None] | None = None,
                     held: str = "it is still held by an instance that is terminating"
                     ) -> Literal["deleted", "gone", "in-use"]:
    """Call `delete` until it succeeds (`deleted`), the object is not there (`gone`), or
    Lambda answered `in_use` `attempts` times (`in-use`), pausing `delay_s` in between and
    telling `on_wait` `held` each time."""
    for attempt in range(1, attempts + 1):
        try:
            delete()
            return "deleted"
        except ObjectNotFound:
            return "gone"
        except in_use:
            if attempt == attempts:
                break
            if on_wait is not None:
                on_wait(f"{held}; asking again in {delay_s:.0f} s")
            pause(delay_s)
    return "in-use"
