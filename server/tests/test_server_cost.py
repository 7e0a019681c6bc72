"""The work of a request (megapixel-steps), the budget check, and the cost model behind
Retry-After: pure functions on numbers."""

from __future__ import annotations

import pytest
from flux_server.cost import CostModel, budget_for, check_budget, work_of
from flux_server.engine import GenerationParams
from flux_server.schemas import InputError


def _params(side: int, steps: int, images: int = 1, negative: str | None = None,
            cfg: float = 1.0) -> GenerationParams:
    return GenerationParams("p", side, side, steps, 0.0, 1, images, negative, cfg)


def test_work_counts_pixels_steps_images_and_true_cfg_twice():
    assert work_of(_params(1024, 4, 4)) == pytest.approx(16.777216)
    assert work_of(_params(1024, 4, 1, "blurry", 4.0)) == pytest.approx(2 * 4.194304)
    assert work_of(_params(1024, 4, 1, "blurry", 1.0)) == pytest.approx(4.194304)


def test_budget_defaults_per_model_and_the_422_names_both():
    assert budget_for(None, "schnell") == 20 and budget_for(None, "dev") == 60
    assert budget_for(7.5, "dev") == 7.5
    check_budget(_params(1024, 4, 4), 20)  # schnell's 4 images at its defaults fit
    with pytest.raises(InputError) as caught:
        check_budget(_params(2048, 100, 4), 40)
    assert "1677.7 megapixel-steps" in caught.value.rule
    assert "FLUX_MAX_WORK=40" in caught.value.rule
    assert "lower width, height, num_inference_steps or num_images" in caught.value.rule


def test_the_cost_model_learns_a_fixed_part_and_a_part_per_work():
    model = CostModel()
    assert model.estimate(5.0) == 1.0  # a first guess before any run
    for work, seconds in [(0.01, 0.11), (16.8, 4.31), (0.01, 0.11), (16.8, 4.31)]:
        model.record(work, seconds)
    fixed, per_work = model.fit()
    assert fixed == pytest.approx(0.1, abs=0.01) and per_work == pytest.approx(0.25, abs=0.01)
    only_large = CostModel()
    for _ in range(3):
        only_large.record(16.8, 4.2)
    assert only_large.estimate(0.01) < 0.01  # through the origin: small work, small wait
