"""What a generation costs: its work in megapixel-steps (the admission budget FLUX_MAX_WORK)
and, learned from the runs so far, the seconds it will take (for an honest Retry-After)."""

from __future__ import annotations

import threading
from collections import deque

from flux_server.engine import GenerationParams
from flux_server.schemas import InputError

# FLUX_MAX_WORK's default per model kind, in megapixel-steps (width x height x steps x images
# / 1e6): schnell allows 4 images of 1024x1024 at its 4 steps; dev one 1024x1024 at 50 steps
# (or two at its default 28); tiny about 10 s of this project's 2-core CPU.
DEFAULT_BUDGET = {"schnell": 20.0, "dev": 60.0, "tiny": 40.0}
FIRST_GUESS_S = 1.0  # seconds per job before any has run
WINDOW = 32  # runs the model is fitted on


def work_of(params: GenerationParams) -> float:
    """Megapixel-steps; true CFG (a negative prompt with true_cfg_scale > 1) runs the
    transformer twice per step, so it counts twice."""
    work = params.width * params.height * params.steps * params.num_images / 1e6
    return work * 2 if params.negative_prompt and params.true_cfg_scale > 1 else work


def budget_for(max_work: float | None, kind: str) -> float:
    """FLUX_MAX_WORK, or the default for this model kind."""
    return max_work if max_work is not None else DEFAULT_BUDGET.get(kind, DEFAULT_BUDGET["dev"])


def check_budget(params: GenerationParams, budget: float,
                 fields: tuple[str, str, str] = ("width", "height", "num_images")) -> None:
    """InputError (422) naming the budget and what the request asked for."""
    work = work_of(params)
    if work <= budget:
        return
    cfg = " x 2 (true CFG)" if params.negative_prompt and params.true_cfg_scale > 1 else ""
    names = list(dict.fromkeys((fields[0], fields[1], "num_inference_steps", fields[2])))
    raise InputError("body", f"asks for {work:.1f} megapixel-steps ({params.width}x"
                     f"{params.height} x {params.steps} steps x {params.num_images} images / "
                     f"1e6{cfg}), over this server's budget FLUX_MAX_WORK={budget:g}: lower "
                     f"{', '.join(names[:-1])} or {names[-1]}")


class CostModel:
    """seconds = fixed + per_work x work, least squares over the last WINDOW runs (both
    terms kept >= 0); thread-safe."""

    def __init__(self) -> None:
        self._runs: deque[tuple[float, float]] = deque(maxlen=WINDOW)
        self._lock = threading.Lock()

    def record(self, work: float, seconds: float) -> None:
        with self._lock:
            self._runs.append((work, seconds))

    def estimate(self, work: float) -> float:
        fixed, per_work = self.fit()
        return fixed + per_work * work

    def fit(self) -> tuple[float, float]:
        with self._lock:
            runs = list(self._runs)
        if not runs:
            return FIRST_GUESS_S, 0.0
        n = len(runs)
        mean_w = sum(w for w, _ in runs) / n
        mean_s = sum(s for _, s in runs) / n
        spread = sum((w - mean_w) ** 2 for w, _ in runs)
        if spread > 1e-12:
            per_work = sum((w - mean_w) * (s - mean_s) for w, s in runs) / spread
            fixed = mean_s - per_work * mean_w
            if per_work >= 0 and fixed >= 0:
                return fixed, per_work
            if per_work < 0:
                return mean_s, 0.0
        total_w2 = sum(w * w for w, _ in runs)
        if total_w2 <= 0:
            return mean_s, 0.0
        return 0.0, sum(w * s for w, s in runs) / total_w2  # through the origin
