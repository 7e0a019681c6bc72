"""The head's log after a worker was lost mid-load (lines captured from the 3-node e2e run):
a replica lost and retried is a warning that points at the node, never a server crash."""

from __future__ import annotations

from intelligensi_deploy.diagnosis.diagnose import diagnose, has_errors

LOST = """\
INFO:     127.0.0.1:40122 - "POST /generate HTTP/1.1" 200 OK
2026-12-01 21:58:52 WARNING flux_server.cluster: replica lost during a request (attempt 1): \
The actor e16fd4cfd72b6d6617fd0f8001000000 is unavailable: The actor is temporarily unavailable
ray.exceptions.ActorUnavailableError: The actor e16fd4cfd72b6d6617fd0f8001000000 is \
unavailable: The actor is temporarily unavailable: RpcError: RPC error: failed to connect to \
all addresses; last error: UNKNOWN: ipv4:172.31.90.13:6427: Failed to connect to remote host: \
Connection refused rpc_code: 14. The task may or may not have been executed on the actor.
INFO:     127.0.0.1:40124 - "POST /generate HTTP/1.1" 200 OK
"""


def test_a_lost_replica_is_a_warning_naming_the_retry_not_a_crash() -> None:
    findings = diagnose(LOST)
    assert [f.id for f in findings] == ["replica-lost"]
    assert findings[0].severity == "warning" and not has_errors(findings)
    assert "172.31.90.13:6427" in " ".join(findings[0].evidence)
    assert "retried" in findings[0].fix


def test_a_real_crash_after_it_is_still_a_crash() -> None:
    text = LOST + "Traceback (most recent call last):\n  File \"x\", line 1\nKeyError: 'oops'\n"
    assert {f.id for f in diagnose(text)} == {"replica-lost", "container-crash"}
