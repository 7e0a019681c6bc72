"""doctor's `forgotten` check: instances fluxdeploy launched that no record here knows of
(another machine's `up`, or a lost state folder). They bill unseen. READ-ONLY: it reads the
instance list the `lambda-key` check already fetched, and the local records."""

from __future__ import annotations

import time

from intelligensi_deploy.doctor.check_types import CheckResult, DoctorDeps, Facts, make_result
from intelligensi_deploy.inventory import classify, forgotten
from intelligensi_deploy.state_records import read_records

TITLE = "Every instance fluxdeploy launched has a record here"


def check_forgotten(deps: DoctorDeps, facts: Facts) -> CheckResult:
    records = deps.records() if deps.records is not None else read_records()
    rows = forgotten(classify(list(facts.instances.values()), records, time.time()))
    if not rows:
        return make_result("forgotten", TITLE, "pass",
                           ["no instance tagged by fluxdeploy lacks a record here"])
    evidence = [f"{r.id}: {r.instance_type} in {r.region} ({r.ip or 'no address'}), tagged "
                f"for deployment {r.tagged!r}, {r.status}: billing, no record here"
                for r in rows]
    return make_result("forgotten", TITLE, "warn", evidence,
                       fix="`fluxdeploy instances` lists them; end one with `fluxdeploy down "
                           "--instance ID` (or keep it, if another machine manages it).",
                       doc="cost")
