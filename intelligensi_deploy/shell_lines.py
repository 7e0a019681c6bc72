"""The exact command lines doctor and the errors print for a look inside a deployment: a
shell in its running container, or in its image when the container will not stay up. Pure."""

from __future__ import annotations


def exec_line(name: str, node: int | None = None) -> str:
    """`fluxdeploy exec` for deployment `name` (node 1 unless `node`)."""
    where = f" --node {node}" if node and node != 1 else ""
    return f"fluxdeploy exec --name {name}{where}"


def image_shell_line(name: str, provider: str, image: str) -> str:
    """Run the image by hand with a shell for its entrypoint, where the container runs."""
    run = f"docker run --rm -it --entrypoint bash {image}"
    return run if provider == "local" else f"fluxdeploy ssh --name {name} -- {run}"
