"""The `kubectl create secret` lines of `fluxdeploy k8s secret`: they read each secret from
the user's environment at the moment they run (and do nothing while it is unset), so no secret is in fluxdeploy's output, the
YAML, or any process's argv (`printf` is a shell builtin). Pure.
"""

from __future__ import annotations

from intelligensi_deploy.k8s import common, rayservice
from intelligensi_deploy.presets import Preset

API_KEY_ENV = "FLUX_API_KEY"


def secret_lines(preset: Preset, name: str) -> list[str]:
    """Comment lines and commands, in the order to run them."""
    namespace = common.section(preset).namespace
    need = "required: the model is gated" if preset.gated else "optional for this model"
    lines = [(f"# HF_TOKEN ({need}); set it first (`read -rs HF_TOKEN; export HF_TOKEN` "
              "keeps it out of your shell history)"),
             (f"test -n \"${{HF_TOKEN-}}\" && printf %s \"$HF_TOKEN\" | kubectl create secret generic "
              f"{common.hf_token_secret(name)} --namespace {namespace} "
              "--from-file=HF_TOKEN=/dev/stdin")]
    if preset.auth_on:
        lines += [(f"# The server's API key (auth is on): clients send it as a bearer "
                   f"token; export {API_KEY_ENV}=$(openssl rand -hex 32)"),
                  (f"test -n \"${{{API_KEY_ENV}-}}\" && printf '%s\\n' \"${API_KEY_ENV}\" | kubectl create secret generic "
                   f"{common.api_keys_secret(name)} --namespace {namespace} "
                   "--from-file=api-keys=/dev/stdin")]
    if preset.scale is not None:
        lines += [(f"# Ray's cluster token (RAY_AUTH_MODE=token); export "
                   f"{rayservice.RAY_TOKEN_ENV}=$(openssl rand -hex 32)"),
                  (f"test -n \"${{{rayservice.RAY_TOKEN_ENV}-}}\" && printf %s "
                   f"\"${rayservice.RAY_TOKEN_ENV}\" | kubectl create secret generic "
                   f"{rayservice.ray_token_secret(name)} --namespace {namespace} "
                   f"--from-file={rayservice.RAY_TOKEN_KEY}=/dev/stdin")]
    return lines
