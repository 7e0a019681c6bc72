"""What a client written against the dual FP4/BF16 API (seed 003) sends: `lora_name` and
`lora_weight`, `GET /loras`, and `negative_prompt` (never silently ignored)."""

from __future__ import annotations

BASE = {"prompt": "a lighthouse", "width": 64, "height": 64, "num_inference_steps": 2,
        "seed": 11}


def test_lora_name_and_weight_are_names_for_source_and_weight(ready_server, tiny_dir, lora_dir):
    from flux_server.tiny import save_tiny_lora

    folder = lora_dir / "seed-style"
    if not folder.exists():
        save_tiny_lora(tiny_dir, folder)
    client = ready_server.client
    applied = client.post("/apply-lora", json={"lora_name": "seed-style", "lora_weight": 0.5,
                                               "adapter_name": "seed"})
    assert applied.status_code == 200, applied.text
    assert {"name": "seed", "source": "seed-style", "weight": 0.5} in applied.json()["adapters"]
    assert client.get("/loras").json() == client.get("/lora-status").json()
    both = client.post("/apply-lora", json={"source": "seed-style", "lora_name": "seed-style"})
    assert both.status_code == 422 and "another name for source" in both.text
    neither = client.post("/apply-lora", json={"weight": 1.0})
    assert neither.status_code == 422 and "lora_name" in neither.text
    assert client.post("/remove-lora", json={"adapter_name": "seed"}).status_code == 200
    assert client.get("/loras").json()["active"] is False


def test_a_negative_prompt_without_true_cfg_is_refused_and_with_it_is_applied(ready_server):
    client = ready_server.client
    refused = client.post("/generate", json={**BASE, "negative_prompt": "fog"})
    assert refused.status_code == 422
    detail = refused.json()["detail"][0]
    assert detail["field"] == "true_cfg_scale" and "negative_prompt" in detail["rule"]
    plain = client.post("/generate", json=BASE)
    negative = client.post("/generate", json={**BASE, "negative_prompt": "fog",
                                              "true_cfg_scale": 4.0})
    assert plain.status_code == negative.status_code == 200
    assert plain.content != negative.content  # the negative prompt changed the image
    empty = client.post("/generate", json={**BASE, "negative_prompt": ""})
    assert empty.status_code == 200 and empty.content == plain.content
