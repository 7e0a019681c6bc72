"""The docker argv builders: pure functions, no Docker needed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.remote import docker
from intelligensi_deploy.remote.docker import ImageNotFoundError, RegistryAuthError, pull_error
from intelligensi_deploy.remote.docker_args import (
    ContainerSpec,
    image_inspect_args,
    image_needs_login,
    inspect_args,
    login_args,
    logs_args,
    looks_secret,
    ps_args,
    pull_args,
    registry_of,
    rm_args,
    run_args,
)
from intelligensi_deploy.remote.host import RunResult

SECRET = "hf_abcdefghijklmnopqrstuvwxyz0123456789"


def spec(**overrides: object) -> ContainerSpec:
    values: dict[str, object] = {
        "name": "fluxdeploy-demo",
        "image": "ghcr.io/acme/flux-server:1.0",
        "port": 8000,
    }
    values.update(overrides)
    return ContainerSpec(**values)  # type: ignore[arg-type]


def flag_values(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == flag]


# run_args


def test_run_args_starts_detached_with_name_restart_and_image_last() -> None:
    args = run_args(spec())
    assert args[:2] == ["run", "-d"]
    assert flag_values(args, "--name") == ["fluxdeploy-demo"]
    assert flag_values(args, "--restart") == ["unless-stopped"]
    assert args[-1] == "ghcr.io/acme/flux-server:1.0"


def test_docker_stop_waits_for_the_servers_grace_period() -> None:
    assert flag_values(run_args(spec()), "--stop-timeout") == ["15"]  # 10 s grace + 5
    assert flag_values(run_args(spec(env={"FLUX_SHUTDOWN_GRACE_S": "30"})),
                       "--stop-timeout") == ["35"]
    assert flag_values(run_args(spec(env={"FLUX_SHUTDOWN_GRACE_S": "2.5"})),
                       "--stop-timeout") == ["8"]


def test_run_args_custom_restart_policy() -> None:
    assert flag_values(run_args(spec(restart="no")), "--restart") == ["no"]


def test_tunnel_exposure_publishes_on_loopback_only() -> None:
    assert flag_values(run_args(spec(port=8000)), "-p") == ["127.0.0.1:8000:8000"]


def test_public_exposure_publishes_on_all_addresses() -> None:
    args = run_args(spec(publish_ip="0.0.0.0", port=9000, container_port=8000))
    assert flag_values(args, "-p") == ["0.0.0.0:9000:8000"]


def test_ipv6_publish_address_is_bracketed() -> None:
    assert flag_values(run_args(spec(publish_ip="::1")), "-p") == ["[::1]:8000:8000"]


def test_gpus_flag_only_on_gpu_hosts() -> None:
    assert flag_values(run_args(spec(gpus=True)), "--gpus") == ["all"]
    assert "--gpus" not in run_args(spec(gpus=False))


def test_env_file_is_passed_by_path() -> None:
    args = run_args(spec(env_file="/home/ubuntu/.fluxdeploy/demo.env"))
    assert flag_values(args, "--env-file") == ["/home/ubuntu/.fluxdeploy/demo.env"]
    assert "--env-file" not in run_args(spec())


def test_plain_env_becomes_dash_e_pairs_in_order() -> None:
    args = run_args(spec(env={"FLUX_MODEL": "tiny", "FLUX_MEMORY": "cpu", "PORT": "8000"}))
    assert flag_values(args, "-e") == ["FLUX_MODEL=tiny", "FLUX_MEMORY=cpu", "PORT=8000"]


def test_env_value_with_spaces_stays_one_argument() -> None:
    args = run_args(spec(env={"FLUX_DEVICE_MAP": "a b"}))
    assert flag_values(args, "-e") == ["FLUX_DEVICE_MAP=a b"]


@pytest.mark.parametrize(
    "name",
    [
        "HF_TOKEN",
        "GHCR_TOKEN",
        "HUGGINGFACEHUB_API_TOKEN",
        "LAMBDA_API_KEY",
        "DB_PASSWORD",
        "my_secret",
    ],
)
def test_secret_looking_env_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="env file"):
        run_args(spec(env={name: SECRET}))


def test_secret_refusal_is_a_user_facing_error() -> None:
    with pytest.raises(FluxdeployError) as caught:
        run_args(spec(env={"HF_TOKEN": SECRET}))
    assert SECRET not in str(caught.value)
    assert "env file" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("HF_TOKEN", True),
        ("HUGGING_FACE_HUB_TOKEN", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("OPENAI_API_KEY", True),
        ("hf_token", True),
        ("TOKENIZERS_PARALLELISM", False),
        ("FLUX_MODEL", False),
        ("PORT", False),
        ("KEYBOARD", False),
    ],
)
def test_looks_secret(name: str, secret: bool) -> None:
    assert looks_secret(name) is secret


def test_non_secret_token_like_names_are_allowed() -> None:
    args = run_args(spec(env={"TOKENIZERS_PARALLELISM": "false"}))
    assert flag_values(args, "-e") == ["TOKENIZERS_PARALLELISM=false"]


def test_secret_in_env_file_never_reaches_argv() -> None:
    args = run_args(
        spec(
            env={"FLUX_MODEL": "black-forest-labs/FLUX.1-dev"},
            env_file="/home/ubuntu/.fluxdeploy/demo.env",
        )
    )
    assert not any(SECRET in arg for arg in args)
    assert not any("HF_TOKEN" in arg for arg in args)


def test_volumes_in_order() -> None:
    args = run_args(spec(volumes=[("/home/ubuntu/.cache/huggingface", "/data/hf"), ("/a", "/b")]))
    assert flag_values(args, "-v") == ["/home/ubuntu/.cache/huggingface:/data/hf", "/a:/b"]


def test_labels_identify_the_deployment() -> None:
    args = run_args(
        spec(labels={"fluxdeploy.deployment": "demo", "fluxdeploy.preset": "lambda-a10"})
    )
    assert flag_values(args, "--label") == [
        "fluxdeploy.deployment=demo",
        "fluxdeploy.preset=lambda-a10",
    ]


def test_all_options_come_before_the_image() -> None:
    args = run_args(
        spec(gpus=True, env={"A": "1"}, env_file="/e", volumes=[("/x", "/y")], labels={"l": "v"})
    )
    assert args.index("ghcr.io/acme/flux-server:1.0") == len(args) - 1
    assert args.count("ghcr.io/acme/flux-server:1.0") == 1


def test_spec_is_immutable() -> None:
    with pytest.raises(AttributeError):
        spec().name = "other"  # type: ignore[misc]


# login / pull / inspect / logs / rm / ps


def test_login_reads_password_from_stdin() -> None:
    assert login_args("ghcr.io", "octocat") == [
        "login",
        "ghcr.io",
        "-u",
        "octocat",
        "--password-stdin",
    ]


def test_login_args_have_no_password_flag() -> None:
    args = login_args("ghcr.io", "octocat")
    assert "-p" not in args and "--password" not in args


def test_pull_args() -> None:
    assert pull_args("ghcr.io/acme/flux:1") == ["pull", "ghcr.io/acme/flux:1"]


def test_inspect_args_only_look_at_containers() -> None:
    assert inspect_args("fluxdeploy-demo") == ["inspect", "--type", "container", "fluxdeploy-demo"]


def test_image_inspect_args() -> None:
    assert image_inspect_args("ghcr.io/a/b:1") == [
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        "ghcr.io/a/b:1",
    ]


def test_logs_args_default() -> None:
    assert logs_args("c") == ["logs", "c"]


def test_logs_args_all_options() -> None:
    assert logs_args("c", tail=200, since="10m", follow=True, timestamps=True) == [
        "logs",
        "--tail",
        "200",
        "--since",
        "10m",
        "--follow",
        "--timestamps",
        "c",
    ]


def test_logs_args_tail_zero_is_kept() -> None:
    assert logs_args("c", tail=0) == ["logs", "--tail", "0", "c"]


def test_rm_args_force_by_default() -> None:
    assert rm_args("c") == ["rm", "-f", "c"]
    assert rm_args("c", force=False) == ["rm", "c"]


def test_ps_args_json_lines_all_containers() -> None:
    assert ps_args() == ["ps", "--no-trunc", "--format", "{{json .}}", "-a"]


def test_ps_args_filters_from_mapping_and_list() -> None:
    assert ps_args({"label": "fluxdeploy.deployment=demo"})[-2:] == [
        "--filter",
        "label=fluxdeploy.deployment=demo",
    ]
    assert ps_args(["name=a", "status=running"], all=False) == [
        "ps",
        "--no-trunc",
        "--format",
        "{{json .}}",
        "--filter",
        "name=a",
        "--filter",
        "status=running",
    ]


# registries


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("ghcr.io/x/y:t", "ghcr.io"),
        ("ghcr.io/x/y", "ghcr.io"),
        ("ghcr.io/x/y@sha256:" + "a" * 64, "ghcr.io"),
        ("localhost:5000/x", "localhost:5000"),
        ("localhost/x", "localhost"),
        ("127.0.0.1:5000/team/x:1", "127.0.0.1:5000"),
        ("registry.example.com/a/b/c:1", "registry.example.com"),
        ("x/y", "docker.io"),
        ("x/y:latest", "docker.io"),
        ("ubuntu", "docker.io"),
        ("ubuntu:22.04", "docker.io"),
        ("docker.io/library/ubuntu", "docker.io"),
        ("index.docker.io/library/ubuntu", "docker.io"),
        ("nvcr.io/nvidia/pytorch:24.01-py3", "nvcr.io"),
    ],
)
def test_registry_of(image: str, registry: str) -> None:
    assert registry_of(image) == registry


@pytest.mark.parametrize(
    ("image", "have_credentials", "expected"),
    [
        ("ghcr.io/acme/flux:1", True, True),
        ("ghcr.io/acme/flux:1", False, False),
        ("localhost:5000/flux:1", True, True),
        ("acme/flux:1", True, False),
        ("docker.io/acme/flux:1", True, False),
        ("ubuntu", False, False),
    ],
)
def test_image_needs_login(image: str, have_credentials: bool, expected: bool) -> None:
    assert image_needs_login(image, have_credentials) is expected


# pull error mapping (pure)


def failed(stderr: str) -> RunResult:
    return RunResult(("docker", "pull", "x"), 1, "", stderr)


@pytest.mark.parametrize(
    "stderr",
    [
        'Error response from daemon: Head "https://ghcr.io/v2/acme/flux/manifests/1": unauthorized',
        "Error response from daemon: denied: denied",
        (
            'Error response from daemon: Get "http://localhost:5000/v2/x/manifests/1": '
            "no basic auth credentials"
        ),
    ],
)
def test_pull_auth_failures_are_registry_auth_errors(stderr: str) -> None:
    error = pull_error("ghcr.io/acme/flux:1", failed(stderr))
    assert isinstance(error, RegistryAuthError)
    text = str(error)
    assert "ghcr.io" in text and "GHCR_TOKEN" in text
    assert "hugging" not in text.lower() and "HF_TOKEN" not in text


def test_auth_errors_point_to_the_right_playbook_section() -> None:
    denied = failed("Error response from daemon: denied: denied")
    assert pull_error("ghcr.io/acme/flux:1", denied).doc == "ghcr-auth"
    assert pull_error("localhost:5000/flux:1", denied).doc == "registry-auth"


@pytest.mark.parametrize(
    "stderr",
    [
        "Error response from daemon: manifest unknown",
        "Error response from daemon: manifest for ghcr.io/acme/flux:9 not found: manifest unknown",
    ],
)
def test_pull_missing_images_are_not_found_errors(stderr: str) -> None:
    error = pull_error("ghcr.io/acme/flux:9", failed(stderr))
    assert isinstance(error, ImageNotFoundError)
    assert "ghcr.io/acme/flux:9" in str(error)


def test_docker_hub_denied_mentions_the_image_may_not_exist() -> None:
    error = pull_error(
        "acme/nope",
        failed(
            "Error response from daemon: pull access denied for acme/nope, repository does "
            "not exist or may require 'docker login': denied: requested access to the "
            "resource is denied"
        ),
    )
    assert isinstance(error, RegistryAuthError)
    assert "does not exist" in str(error)


def test_other_pull_failures_stay_generic() -> None:
    error = pull_error("ghcr.io/a/b:1", failed("write /var/lib/docker: no space left on device"))
    assert type(error) is docker.DockerError
    assert "no space left" in str(error)


def test_importing_docker_module_does_not_import_paramiko() -> None:
    code = (
        "import sys, intelligensi_deploy.remote.docker, intelligensi_deploy.remote.host; "
        "sys.exit(1 if 'paramiko' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
