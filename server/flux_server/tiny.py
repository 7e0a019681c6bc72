"""A tiny random-weight FLUX pipeline (under 1 MB), built offline for smoke tests.

It keeps FLUX.1's latent geometry: a VAE that downsamples 8x (four levels, so
`vae_scale_factor` is 8) into 16 latent channels, and a transformer whose `in_channels` is
64 = 16 x 4 for the packed 2x2 latent patches. A 1024x1024 image is then 64x64 = 4096
image tokens, as on the real model, and every allowed size runs in about a second on CPU.

Built with the installed library versions and saved with `save_pretrained`, so it is loaded
back through the real `FluxPipeline.from_pretrained` code like any hub model.
"""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path

TINY_MODEL = "tiny"
TINY_SIZE = 64  # default width/height for the tiny pipeline
LATENT_CHANNELS = 16  # as FLUX.1's VAE
VAE_LEVELS = 4  # 2 ** (levels - 1) = 8x downsampling, as FLUX.1's VAE


def _clip_tokenizer(workdir: Path):
    from transformers import CLIPTokenizer  # lazy: only when the tiny pipeline is built

    letters = list(string.ascii_lowercase)
    tokens = ["<|startoftext|>", "<|endoftext|>"] + letters + [c + "</w>" for c in letters]
    vocab_file = workdir / "vocab.json"
    merges_file = workdir / "merges.txt"
    vocab_file.write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    merges_file.write_text("#version: 0.2\n")
    return CLIPTokenizer(str(vocab_file), str(merges_file), model_max_length=77)


def _t5_tokenizer():
    from tokenizers import (  # lazy: only when the tiny pipeline is built
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
    )
    from transformers import T5Tokenizer  # lazy: tiny pipeline only

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -1.0)]
    pieces += [(c, -2.0) for c in string.ascii_lowercase]
    pieces += [("\u2581" + c, -1.5) for c in string.ascii_lowercase]
    backend = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    return T5Tokenizer(  # transformers 5: the tokenizers-backed (fast) T5 tokenizer
        tokenizer_object=backend,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        extra_ids=0,
        model_max_length=512,
    )


def build_tiny_pipeline(seed: int = 0):
    """Return a tiny random `FluxPipeline` on CPU in fp32 (deterministic for a given seed)."""
    import torch  # lazy: only when the tiny pipeline is built
    from diffusers import (  # lazy: only when the tiny pipeline is built
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxPipeline,
        FluxTransformer2DModel,
    )
    from transformers import (  # lazy: tiny pipeline only
        CLIPTextConfig,
        CLIPTextModel,
        T5Config,
        T5EncoderModel,
    )

    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=LATENT_CHANNELS * 4, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        axes_dims_rope=[4, 4, 8],
    )
    # No attention in the VAE's mid block: at 1024x1024 it would attend over 128x128
    # latent pixels, quadratic and the one cost that does not shrink with the model.
    vae = AutoencoderKL(
        sample_size=32, in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * VAE_LEVELS,
        up_block_types=("UpDecoderBlock2D",) * VAE_LEVELS,
        block_out_channels=(4,) * VAE_LEVELS, layers_per_block=1,
        latent_channels=LATENT_CHANNELS, norm_num_groups=1, mid_block_add_attention=False,
        use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609,
        scaling_factor=1.5035,
    )
    clip = CLIPTextModel(CLIPTextConfig(
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        vocab_size=1000, projection_dim=32, max_position_embeddings=77,
        bos_token_id=0, eos_token_id=1, pad_token_id=1,
    ))
    t5_config = T5Config(
        d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, vocab_size=1000,
        relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1,
    )
    t5_config.decoder_start_token_id = 0  # not a keyword of transformers 5's T5Config
    t5 = T5EncoderModel(t5_config)
    with tempfile.TemporaryDirectory() as workdir:
        clip_tokenizer = _clip_tokenizer(Path(workdir))
    return FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=clip,
        tokenizer=clip_tokenizer,
        text_encoder_2=t5,
        tokenizer_2=_t5_tokenizer(),
        transformer=transformer,
    )


def save_tiny_pipeline(path: str | Path, seed: int = 0) -> Path:
    """Build the tiny pipeline and save it (safetensors) under `path`; return the path."""
    path = Path(path)
    build_tiny_pipeline(seed).save_pretrained(str(path), safe_serialization=True)
    return path


def save_tiny_lora(pipeline_path: str | Path, lora_path: str | Path, rank: int = 4,
                   seed: int = 1) -> Path:
    """Save a random (non-identity) LoRA for the tiny transformer under `lora_path`."""
    import torch  # lazy: only when the tiny pipeline is built
    from diffusers import FluxPipeline, FluxTransformer2DModel  # lazy: tiny pipeline only
    from peft import LoraConfig, get_peft_model_state_dict  # lazy: tiny pipeline only

    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel.from_pretrained(str(pipeline_path),
                                                         subfolder="transformer")
    config = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False,
                        target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    transformer.add_adapter(config)
    with torch.no_grad():
        for name, param in transformer.named_parameters():
            if "lora_" in name:
                param.mul_(5.0)
    FluxPipeline.save_lora_weights(
        str(lora_path), transformer_lora_layers=get_peft_model_state_dict(transformer),
        safe_serialization=True,
    )
    return Path(lora_path)
