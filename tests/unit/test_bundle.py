"""The bundled image, pure parts: build settings and their precedence, the context and its
hash, the `docker build` argv, and the steps/layers read from real build output."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from intelligensi_deploy.bundle.build import BuildPlan, build_argv, plan_build
from intelligensi_deploy.bundle.context import (
    CONTEXT_ENV,
    context_files,
    context_hash,
    find_context_dir,
    image_tag,
    tar_bytes,
)
from intelligensi_deploy.bundle.progress import BuildProgress
from intelligensi_deploy.bundle.settings import BuildSettings, parse_flags, resolve, sources
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.preset_paths import preset_files
from intelligensi_deploy.presets import load_preset, parse_preset

ROOT = Path(__file__).resolve().parents[2]
TEXTS = Path(__file__).parent / "build_texts"


# --------------------------------------------------------------------------- settings


def test_every_shipped_preset_builds_the_bundled_server() -> None:
    for name in preset_files():
        preset = load_preset(name)
        assert preset.bundled, name
        assert preset.image_path.startswith("build on the host")


def test_a_registry_image_keeps_the_pull_path() -> None:
    preset = parse_preset("provider: local\nimage: ghcr.io/me/flux-server:1.0\n", "mine.yaml")
    assert not preset.bundled and preset.image_path == "pull ghcr.io/me/flux-server:1.0"


def test_local_preset_builds_the_cpu_torch_from_pytorchs_index() -> None:
    build = load_preset("local").build
    assert build.torch == "torch==2.13.0+cpu" and build.extras == []
    assert build.torch_index == "https://download.pytorch.org/whl/cpu"


def test_precedence_is_flag_then_env_then_preset_then_default() -> None:
    preset = BuildSettings(base_image="from-preset:1")
    env = {"FLUXDEPLOY_BUILD_BASE_IMAGE": "from-env:1", "FLUXDEPLOY_BUILD_TORCH": "torch==2.1"}
    flags = parse_flags(["base_image=from-flag:1"])
    got = resolve(preset, flags, env)
    assert got.base_image == "from-flag:1"          # flag beats env and preset
    assert got.torch == "torch==2.1"                # env beats the default
    assert resolve(preset, {}, {}).base_image == "from-preset:1"
    assert resolve(BuildSettings(), {}, {}).extras == ["quant"]  # the default
    where = sources(preset, flags, env)
    assert where["base_image"] == "flag" and where["torch"].startswith("env ")
    assert where["extras"] == "default"


def test_empty_values_clear_optional_keys_and_extras() -> None:
    preset = BuildSettings(torch_index="https://download.pytorch.org/whl/cpu", extras=["quant"])
    got = resolve(preset, {}, {"FLUXDEPLOY_BUILD_TORCH_INDEX": "", "FLUXDEPLOY_BUILD_EXTRAS": ""})
    assert got.torch_index is None and got.extras == []
    assert resolve(preset, parse_flags(["extras=quant, other"]), {}).extras == ["quant", "other"]
    assert got.build_args() == {"BASE_IMAGE": got.base_image, "TORCH_SPEC": "torch==2.13.0",
                                "TORCH_INDEX_URL": "", "SERVER_EXTRAS": ""}


@pytest.mark.parametrize("flag", ["base_image", "nope=1", "=x"])
def test_bad_build_flags_name_the_allowed_keys(flag: str) -> None:
    with pytest.raises(FluxdeployError) as err:
        parse_flags([flag])
    assert "base_image, torch, torch_index, extras, extra_dir" in str(err.value)


def test_a_bad_override_names_the_field() -> None:
    with pytest.raises(FluxdeployError) as err:
        resolve(BuildSettings(), {"torch": "numpy==1"}, {})
    assert "torch" in str(err.value) and "FLUXDEPLOY_BUILD_" in str(err.value)


def test_unknown_build_key_in_a_preset_is_refused_with_the_allowed_ones() -> None:
    with pytest.raises(FluxdeployError) as err:
        parse_preset("provider: local\nbuild: {base: x}\n", "bad.yaml")
    assert "build.base" in str(err.value) and "base_image" in str(err.value)


# --------------------------------------------------------------------------- context


def copy_server(dest: Path) -> Path:
    import shutil

    shutil.copytree(ROOT / "server", dest, ignore=shutil.ignore_patterns(
        "__pycache__", ".build-extra", "tests"))
    return dest


def test_context_is_the_server_without_caches_or_its_own_build_extra(tmp_path: Path) -> None:
    ctx = copy_server(tmp_path / "server")
    (ctx / "flux_server" / "__pycache__").mkdir()
    (ctx / "flux_server" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"x")
    (ctx / ".build-extra").mkdir()
    (ctx / ".build-extra" / "secret-ish.txt").write_text("never sent")
    names = [f.arcname for f in context_files(ctx)]
    assert {"Dockerfile", ".dockerignore", "pyproject.toml", "flux_server/app.py"} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.startswith(".build-extra")]
    assert not [n for n in names if n.startswith("tests")]


def test_extra_dir_travels_as_build_extra(tmp_path: Path) -> None:
    ctx = copy_server(tmp_path / "server")
    extra = tmp_path / "extra"
    (extra / "wheels").mkdir(parents=True)
    (extra / "ca-certificates.crt").write_text("CA")
    (extra / "wheels" / "torch-0-none.whl").write_bytes(b"wheel")
    files = context_files(ctx, str(extra))
    with tarfile.open(fileobj=io.BytesIO(tar_bytes(files))) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members[".build-extra/ca-certificates.crt"].size == 2
        assert tar.extractfile(".build-extra/wheels/torch-0-none.whl").read() == b"wheel"
        assert all(m.uid == 0 and m.mtime == 0 for m in members.values())


def test_missing_extra_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FluxdeployError) as err:
        context_files(copy_server(tmp_path / "server"), str(tmp_path / "nowhere"))
    assert "extra_dir" in str(err.value) and "FLUXDEPLOY_BUILD_EXTRA_DIR" in str(err.value)


def test_hash_follows_content_and_build_args_only(tmp_path: Path) -> None:
    ctx = copy_server(tmp_path / "server")
    args = BuildSettings().build_args()
    first = context_hash(context_files(ctx), args)
    (ctx / "flux_server" / "app.py").touch()                    # mtime alone: same image
    assert context_hash(context_files(ctx), args) == first
    other = copy_server(tmp_path / "elsewhere")                 # another folder: same image
    assert context_hash(context_files(other), args) == first
    with open(ctx / "flux_server" / "app.py", "a") as handle:   # one-line code change
        handle.write("# changed\n")
    changed = context_hash(context_files(ctx), args)
    assert changed != first
    assert context_hash(context_files(ctx), {**args, "TORCH_SPEC": "torch==2.1"}) != changed
    assert image_tag(first) == f"fluxdeploy/flux-server:{first[:12]}"


def test_context_override_and_missing_context(tmp_path: Path) -> None:
    ctx = copy_server(tmp_path / "server")
    assert find_context_dir({CONTEXT_ENV: str(ctx)}) == ctx
    assert find_context_dir({}) in (ROOT / "server", ROOT / "intelligensi_deploy" / "_server")
    with pytest.raises(FluxdeployError) as err:
        find_context_dir({CONTEXT_ENV: str(tmp_path / "none")})
    assert CONTEXT_ENV in str(err.value)


def test_build_argv_reads_the_context_from_stdin_with_the_presets_args(tmp_path: Path) -> None:
    ctx = copy_server(tmp_path / "server")
    settings = BuildSettings(base_image="fluxdeploy/base-cpu:bookworm", extras=[])
    plan = plan_build(settings, {CONTEXT_ENV: str(ctx)})
    argv = build_argv(plan)
    assert argv[:3] == ["build", "-t", plan.tag] and argv[-1] == "-"
    assert "BASE_IMAGE=fluxdeploy/base-cpu:bookworm" in argv and "SERVER_EXTRAS=" in argv
    assert f"fluxdeploy.context-hash={plan.full_hash}" in argv
    arm = plan_build(settings, {CONTEXT_ENV: str(ctx)}, platform="linux/arm64")
    assert arm.tag != plan.tag and build_argv(arm)[-3:] == ["--platform", "linux/arm64", "-"]


# --------------------------------------------------------------------------- progress

CLASSIC = """\
Sending build context to Docker daemon  192.1MB
Step 2/30 : FROM ${BASE_IMAGE} AS runtime-base
 ---> 36d9f6bb96a1
Step 14/30 : RUN set -eu; cd /tmp/build; pip install -r requirements.txt
 ---> Using cache
 ---> 257c2e407356
Step 20/30 : COPY flux_server /tmp/src/flux_server/
 ---> 9a0c2d1e3f4b
Step 21/30 : RUN pip install --no-deps /tmp/src
 ---> Running in 3f2a1b0c9d8e
\x1b[91mwarning: something on stderr\x1b[0m
Removing intermediate container 3f2a1b0c9d8e
 ---> 7e939724c781
Successfully built 7e939724c781
"""

BUILDKIT = """\
#5 [deps 5/6] COPY pyproject.toml /tmp/build/
#5 CACHED
#9 [stage-2 4/6] COPY flux_server /tmp/src/flux_server/
#9 DONE 0.1s
"""


def test_classic_builder_output_becomes_steps_cached_and_built_layers() -> None:
    progress = BuildProgress()
    events = [e for e in (progress.feed(line) for line in CLASSIC.splitlines()) if e]
    assert [e.describe() for e in events] == [
        "step 2/30: FROM ${BASE_IMAGE} AS runtime-base",
        "step 14/30: RUN set -eu; cd /tmp/build; pip install -r requirements.txt",
        "step 14/30: cached",
        "step 20/30: COPY flux_server /tmp/src/flux_server/",
        "step 20/30: built, layer 9a0c2d1e3f4b",
        "step 21/30: RUN pip install --no-deps /tmp/src",
        "step 21/30: built, layer 7e939724c781",
    ]
    assert progress.cached_steps == ["RUN set -eu; cd /tmp/build; pip install -r requirements.txt"]
    assert progress.built_steps == ["COPY flux_server /tmp/src/flux_server/",
                                    "RUN pip install --no-deps /tmp/src"]
    assert "warning: something on stderr" in progress.tail  # colours removed
    assert progress.summary() == "2 step(s) built, 1 from the cache"


def test_buildkit_plain_output_becomes_steps_too() -> None:
    progress = BuildProgress()
    events = [e for e in (progress.feed(line) for line in BUILDKIT.splitlines()) if e]
    assert [e.kind for e in events] == ["step", "cached", "step", "layer"]
    assert events[3].describe() == "step stage-2 4/6: built in 0.1 s"
    assert progress.cached_steps == ["COPY pyproject.toml /tmp/build/"]


def test_the_tail_keeps_the_last_lines_only_and_drops_the_deprecation_banner() -> None:
    progress = BuildProgress(tail_lines=3)
    for line in ["DEPRECATED: The legacy builder is deprecated", *[f"l{i}" for i in range(9)]]:
        progress.feed(line)
    assert list(progress.tail) == ["l6", "l7", "l8"]


def test_a_real_failed_build_log_is_readable_as_progress() -> None:
    progress = BuildProgress()
    for line in (TEXTS / "build_pip_no_matching_version.txt").read_text().splitlines():
        progress.feed(line)
    assert progress.cached_steps and not progress.built_steps


def test_plan_of_the_checkout_lists_the_dockerfile_first_by_name() -> None:
    plan = plan_build(BuildSettings(), {})
    assert isinstance(plan, BuildPlan)
    assert [f.arcname for f in plan.files][:2] == [".dockerignore", "Dockerfile"]


def test_large_files_are_hashed_once_while_their_stat_is_unchanged(tmp_path, monkeypatch):
    """A 190 MB torch wheel in extra_dir is not re-read by every `up`: its digest is kept by
    path, size, mtime and inode, and an edit (new size or mtime) is hashed again."""
    import hashlib

    from intelligensi_deploy.bundle import context

    big = tmp_path / "torch.whl"
    big.write_bytes(b"x" * (context.DigestCache.LARGE + 1))
    cache_file = tmp_path / "cache" / "digests.json"
    first = context.DigestCache(cache_file)
    assert first.digest(big) == hashlib.sha256(big.read_bytes()).hexdigest()
    first.save()
    assert cache_file.stat().st_size > 0

    def no_read(path):
        raise AssertionError(f"{path} was read again")

    monkeypatch.setattr(context, "file_sha256", no_read)
    assert context.DigestCache(cache_file).digest(big) == first.digest(big)  # from the cache

    monkeypatch.undo()
    big.write_bytes(b"y" * (context.DigestCache.LARGE + 2))
    again = context.DigestCache(cache_file)
    assert again.digest(big) == hashlib.sha256(big.read_bytes()).hexdigest()


def test_an_unreadable_digest_cache_is_ignored(tmp_path):
    from intelligensi_deploy.bundle import context

    cache_file = tmp_path / "digests.json"
    cache_file.write_text("{not json")
    big = tmp_path / "w.whl"
    big.write_bytes(b"z" * (context.DigestCache.LARGE + 1))
    cache = context.DigestCache(cache_file)
    assert len(cache.digest(big)) == 64
    cache.save()
    assert str(big.resolve()) in cache_file.read_text()
