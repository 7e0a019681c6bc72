"""A fake Hugging Face Hub on 127.0.0.1 (or any bind host), for HF_ENDPOINT.

It serves model repositories from local folders through the endpoints huggingface_hub and
diffusers use to download (checked against huggingface_hub's source):

    GET  /api/models/{repo}[/revision/{rev}]          model_info / repo_info (sha, siblings)
    GET  /api/models/{repo}/tree/{rev}[/{path}]        list_repo_tree (recursive, no paging)
    HEAD /{repo}/resolve/{rev}/{file}                  metadata: X-Repo-Commit, ETag, size
    GET  /{repo}/resolve/{rev}/{file}                  content (Range supported)

A gated repository answers like the real Hub: no token -> 401, a token without access ->
403, both with `X-Error-Code: GatedRepo` and the Hub's `X-Error-Message`, so huggingface_hub
raises its genuine GatedRepoError. An unknown repository answers 401 `RepoNotFound`.
Tokens are compared, never logged or stored in `requests`.

Standalone (e.g. for a container in end-to-end tests):

    python -m tests.fakes.fake_hf_hub --host 0.0.0.0 --port 8999 \
        --repo black-forest-labs/FLUX.1-dev --gated --token hf_test --tiny
"""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import json
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".model", ".pt", ".ckpt", ".gguf")
MAIN = "main"


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob (what the Hub reports as a regular file's oid)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class RepoFileEntry:
    path: str
    size: int
    blob_id: str
    sha256: str | None  # set for LFS files
    local: Path

    @property
    def etag(self) -> str:
        return self.sha256 or self.blob_id


@dataclass
class FakeRepo:
    """A model repository served from `folder`; `tokens` gives access when `gated`."""

    repo_id: str
    folder: Path
    gated: bool = False
    tokens: frozenset[str] = frozenset()
    bytes_per_second: float | None = None  # throttle file downloads (to watch progress)
    files: dict[str, RepoFileEntry] = field(default_factory=dict)
    commit: str = ""

    def scan(self) -> None:
        """Index the folder's files; the commit hash derives from their contents."""
        files: dict[str, RepoFileEntry] = {}
        digest = hashlib.sha1()
        for local in sorted(p for p in self.folder.rglob("*") if p.is_file()):
            rel = local.relative_to(self.folder).as_posix()
            data = local.read_bytes()
            lfs = rel.endswith(LFS_SUFFIXES)
            files[rel] = RepoFileEntry(rel, len(data), git_blob_sha1(data),
                                       hashlib.sha256(data).hexdigest() if lfs else None, local)
            digest.update(rel.encode() + b"\0" + files[rel].blob_id.encode())
        self.files, self.commit = files, digest.hexdigest()

    def allows(self, token: str | None) -> bool:
        return not self.gated or (token is not None and token in self.tokens)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    authorized: bool  # an Authorization header was present (its value is not kept)
    status: int


class FakeHfHub:
    """The fake hub server: `start()` binds (port 0 = a free one), `url` is for HF_ENDPOINT."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[RecordedRequest] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def add_repo(self, repo_id: str, folder: str | os.PathLike, *, gated: bool = False,
                 tokens: Iterable[str] = (), bytes_per_second: float | None = None) -> FakeRepo:
        """Serve `folder` as `repo_id`; `bytes_per_second` slows each file download."""
        repo = FakeRepo(repo_id, Path(folder), gated, frozenset(tokens), bytes_per_second)
        repo.scan()
        self.repos[repo_id] = repo
        return repo

    @property
    def url(self) -> str:
        """The address for HF_ENDPOINT on this machine."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return self.url_for(host)

    def url_for(self, host: str) -> str:
        """The address as seen from elsewhere, e.g. a container: url_for("172.17.0.1")."""
        return f"http://{host}:{self.port}"

    def start(self) -> FakeHfHub:
        self._server = ThreadingHTTPServer((self.host, self.port), _handler_for(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="fake-hf-hub")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHfHub:  # noqa: PYI034 (start() returns this hub)
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


_API = re.compile(r"^/api/models/(?P<repo>[^/]+(?:/[^/]+)?)"
                  r"(?:/(?P<kind>revision|tree)/(?P<rev>[^/]+)(?:/(?P<sub>.*))?)?$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+(?:/[^/]+)?)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


class _Problem(Exception):
    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _handler_for(hub: FakeHfHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "FakeHfHub/1.0"

        def log_message(self, *_args) -> None:  # keep test output (and tokens) quiet
            pass

        def do_GET(self) -> None:
            self._dispatch(head=False)

        def do_HEAD(self) -> None:
            self._dispatch(head=True)

        # -- routing -------------------------------------------------------------------
        def _dispatch(self, head: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            status = 500
            try:
                api, resolve = _API.match(path), _RESOLVE.match(path)
                if api:
                    status = self._api(api, head)
                elif resolve:
                    status = self._resolve(resolve, head)
                else:
                    raise _Problem(404, None, f"no route {path}")
            except _Problem as problem:
                status = problem.status
                self._send_problem(problem, head)
            except (BrokenPipeError, ConnectionResetError):
                status = 499
            finally:
                hub.requests.append(RecordedRequest(
                    self.command, path, "Authorization" in self.headers, status))

        def _token(self) -> str | None:
            value = self.headers.get("Authorization", "")
            return value[len("Bearer "):].strip() if value.startswith("Bearer ") else None

        def _repo(self, repo_id: str, revision: str | None) -> FakeRepo:
            repo = hub.repos.get(repo_id)
            if repo is None:
                raise _Problem(401, "RepoNotFound", "Repository not found")
            if not repo.allows(self._token()):
                if self._token() is None:
                    raise _Problem(401, "GatedRepo", (
                        f"Access to model {repo_id} is restricted. You must have access to it "
                        "and be authenticated to access it. Please log in."))
                raise _Problem(403, "GatedRepo", (
                    f"Access to model {repo_id} is restricted and you are not in the "
                    f"authorized list. Visit {hub.url}/{repo_id} to ask for access."))
            if revision not in (None, MAIN, repo.commit):
                raise _Problem(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return repo

        # -- endpoints -----------------------------------------------------------------
        def _api(self, match: re.Match, head: bool) -> int:
            repo = self._repo(match["repo"], match["rev"])
            if match["kind"] == "tree":
                sub = (match["sub"] or "").strip("/")
                entries = [e for p, e in repo.files.items()
                           if not sub or p.startswith(sub + "/")]
                body = [_tree_entry(e) for e in entries] + [
                    {"type": "directory", "oid": "0" * 40, "size": 0, "path": d}
                    for d in sorted({e.path.rsplit("/", 1)[0] for e in entries if "/" in e.path})]
                self._send_json(200, body, head)
                return 200
            body = {
                "_id": repo.commit[:24], "id": repo.repo_id, "modelId": repo.repo_id,
                "author": repo.repo_id.split("/")[0], "sha": repo.commit,
                "lastModified": "2026-01-01T00:00:00.000Z", "createdAt": "2026-01-01T00:00:00.000Z",
                "private": False, "gated": "manual" if repo.gated else False, "disabled": False,
                "library_name": "diffusers", "tags": ["diffusers", "text-to-image"],
                "pipeline_tag": "text-to-image", "downloads": 0, "likes": 0,
                "siblings": [{"rfilename": p} for p in repo.files],
                "usedStorage": sum(e.size for e in repo.files.values()),
            }
            self._send_json(200, body, head)
            return 200

        def _resolve(self, match: re.Match, head: bool) -> int:
            repo = self._repo(match["repo"], match["rev"])
            entry = repo.files.get(match["file"])
            if entry is None:
                raise _Problem(404, "EntryNotFound", f"{match['file']} does not exist on \"main\"")
            data = entry.local.read_bytes()
            start, end, status = 0, len(data) - 1, 200
            range_header = self.headers.get("Range", "")
            ranged = re.match(r"bytes=(\d+)-(\d*)$", range_header)
            if ranged:
                start = int(ranged[1])
                end = int(ranged[2]) if ranged[2] else len(data) - 1
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return 416
                status = 206
            chunk = data[start:end + 1]
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(chunk)))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", f'"{entry.etag}"')
            self.send_header("X-Repo-Commit", repo.commit)
            self.send_header("X-Linked-Size", str(entry.size))
            if entry.sha256:
                self.send_header("X-Linked-ETag", f'"{entry.sha256}"')
            self.send_header("Last-Modified", email.utils.formatdate(time.time(), usegmt=True))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.end_headers()
            if not head:
                self._write_throttled(chunk, repo.bytes_per_second)
            return status

        def _write_throttled(self, data: bytes, rate: float | None) -> None:
            if not rate:
                self.wfile.write(data)
                return
            step = max(512, min(16 * 1024, int(rate / 20)))  # ~20 writes a second
            for offset in range(0, len(data), step):
                time.sleep(len(data[offset:offset + step]) / rate)  # before: the time is real
                self.wfile.write(data[offset:offset + step])
                self.wfile.flush()

        # -- responses -----------------------------------------------------------------
        def _send_json(self, status: int, body, head: bool,
                       headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if not head:
                self.wfile.write(data)

        def _send_problem(self, problem: _Problem, head: bool) -> None:
            headers = {"X-Error-Message": problem.message}
            if problem.code:
                headers["X-Error-Code"] = problem.code
            self._send_json(problem.status, {"error": problem.message}, head, headers)

    return Handler


def _tree_entry(entry: RepoFileEntry) -> dict:
    item = {"type": "file", "oid": entry.blob_id, "size": entry.size, "path": entry.path}
    if entry.sha256:
        item["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": 134}
    return item


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--repo", default="black-forest-labs/FLUX.1-schnell")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--folder", help="serve this folder as the repository")
    source.add_argument("--tiny", action="store_true",
                        help="build the tiny FLUX pipeline (needs flux_server) and serve it")
    parser.add_argument("--gated", action="store_true")
    parser.add_argument("--token", action="append", default=[],
                        help="a token that has access to the gated repo (repeatable)")
    args = parser.parse_args(argv)
    folder = args.folder
    if args.tiny:
        server_src = Path(__file__).resolve().parents[2] / "server"
        if str(server_src) not in sys.path:
            sys.path.append(str(server_src))  # flux_server from the checkout if not installed
        from flux_server.tiny import save_tiny_pipeline  # lazy: loads torch

        folder = str(save_tiny_pipeline(Path(tempfile.mkdtemp(prefix="fake-hub-")) / "repo"))
    hub = FakeHfHub(args.host, args.port)
    hub.add_repo(args.repo, folder, gated=args.gated, tokens=args.token)
    hub.start()
    print(f"fake hub serving {args.repo} on http://{args.host}:{hub.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        hub.stop()


if __name__ == "__main__":
    main()
