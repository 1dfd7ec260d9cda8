"""A small local Hugging Face Hub for tests: the endpoints ``huggingface_hub``, ``transformers`` and ``datasets`` call.

The real Hub cannot be reached from the test machines, so publishing and loading are tested end to end against
this server with the real client libraries (``HF_ENDPOINT`` points at it). It keeps git-like state in memory:

- repositories (model, dataset) with branches; every commit stores its parent, message, date and the full file
  tree (path -> blob), so a commit is atomic (the branch head moves only after the whole commit is checked) and the
  history can be listed;
- blobs: regular files (sent base64 inside the commit) and LFS objects (sent through the LFS batch API, PUT and
  verify before the commit that references them), both content-addressed.

Endpoints (those listed in ``hf-facts.md``): ``POST /api/repos/create``, ``POST /api/validate-yaml``,
``GET /api/{t}s/{repo}[/revision/{rev}]``, ``GET /api/{t}s/{repo}/tree/{rev}[/{path}]``,
``POST /api/{t}s/{repo}/paths-info/{rev}``, ``POST /api/{t}s/{repo}/preupload/{rev}``,
``POST /api/{t}s/{repo}/commit/{rev}`` (ndjson), ``GET /api/{t}s/{repo}/refs``, ``GET /api/{t}s/{repo}/commits/{rev}``,
``POST|DELETE /api/{t}s/{repo}/branch/{branch}``, ``POST /{p}{repo}.git/info/lfs/objects/batch`` (+ ``PUT`` upload and
``POST`` verify) and ``HEAD|GET /{p}{repo}/resolve/{rev}/{path}`` (``X-Repo-Commit``, ``ETag``, ``Content-Length``,
``Range``; ``X-Error-Code`` ``RepoNotFound``/``RevisionNotFound``/``EntryNotFound`` on 404).

Writes need ``Authorization: Bearer <token>`` with the server's token; private repositories are invisible without
it. Branch names may not contain ``/``. Failure injection: :meth:`HubServer.fail_next` makes the next call(s) of an
endpoint answer an error (e.g. the commit endpoint answers 500 once), to test interrupted pushes.

Run it by hand with ``python tests/hub_server.py --port 8765`` (token ``hf_local_test_token``), then
``HF_ENDPOINT=http://127.0.0.1:8765 HF_TOKEN=hf_local_test_token HF_HUB_DISABLE_XET=1 wm-hub push ...``.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, request
from werkzeug.serving import WSGIRequestHandler, make_server

DEFAULT_TOKEN = "hf_local_test_token"
USER = "wm-hub-tests"
LFS_SUFFIXES = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.parquet", "*.arrow", "*.png", "*.jpg", "*.npz")
GITATTRIBUTES = "".join(f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in LFS_SUFFIXES)
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
COMMIT_ID = re.compile(r"^[0-9a-f]{40}$")


def git_blob_oid(data: bytes) -> str:
    """The git object id of a blob (sha1 of ``blob <size>\\0<data>``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file that git stores in place of an LFS object."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass(frozen=True)
class Entry:
    """A file in a commit's tree: its blob (sha256 of the content) and whether it is stored with LFS."""

    sha256: str
    size: int
    oid: str  # git oid: of the content for regular files, of the pointer for LFS files
    lfs: bool

    def remote_oid(self) -> str:
        """What ``preupload`` reports, as the client computes it locally (sha256 for LFS, git sha1 otherwise)."""
        return self.sha256 if self.lfs else self.oid


@dataclass
class Commit:
    id: str
    parent: str | None
    title: str
    message: str
    date: str
    files: dict[str, Entry]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)


class HubError(Exception):
    """An error answer: status, ``X-Error-Code`` and message."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class HubState:
    """Repositories, blobs and injected failures, behind one lock."""

    def __init__(self, token: str):
        self.token = token
        self.lock = threading.RLock()
        self.repos: dict[tuple[str, str], Repo] = {}
        self.blobs: dict[str, bytes] = {}  # sha256 -> content (regular files and LFS objects)
        self.failures: dict[str, list[int]] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every call, for tests

    # -- lookup ------------------------------------------------------------------------------------------------
    def repo(self, repo_type: str, repo_id: str, write: bool = False) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not self.authorized()):
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        if write:
            self.require_auth()
        return repo

    def commit(self, repo: Repo, revision: str) -> Commit:
        if revision in repo.branches:
            return repo.commits[repo.branches[revision]]
        if COMMIT_ID.match(revision) and revision in repo.commits:
            return repo.commits[revision]
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def authorized(self) -> bool:
        return request.headers.get("Authorization", "") == f"Bearer {self.token}"

    def require_auth(self) -> None:
        if not self.authorized():
            raise HubError(401, "Invalid credentials in Authorization header")

    # -- writes ------------------------------------------------------------------------------------------------
    def store(self, data: bytes, lfs: bool) -> Entry:
        sha256 = hashlib.sha256(data).hexdigest()
        self.blobs.setdefault(sha256, data)
        oid = git_blob_oid(lfs_pointer(sha256, len(data)) if lfs else data)
        return Entry(sha256, len(data), oid, lfs)

    def new_commit(
        self, repo: Repo, branch: str, parent: Commit | None, files: dict[str, Entry], title: str, message: str
    ) -> Commit:
        date = _now()
        digest = hashlib.sha1()
        for part in (
            parent.id if parent else "",
            title,
            message,
            date,
            json.dumps(sorted(files.items()), default=str),
        ):
            digest.update(part.encode() + b"\0")
        digest.update(str(len(repo.commits)).encode())
        commit = Commit(digest.hexdigest(), parent.id if parent else None, title, message, date, files)
        repo.commits[commit.id] = commit
        repo.branches[branch] = commit.id
        return commit

    def take_failure(self, endpoint: str) -> int | None:
        with self.lock:
            queue = self.failures.get(endpoint)
            return queue.pop(0) if queue else None


def _is_lfs(path: str, size: int, sample: bytes) -> bool:
    """Upload mode: LFS for tracked suffixes (the repo's default ``.gitattributes``), binary samples and big files."""
    name = path.rsplit("/", 1)[-1]
    return (
        any(fnmatch.fnmatch(name, pattern) for pattern in LFS_SUFFIXES)
        or b"\0" in sample
        or size > (LFS_SIZE_THRESHOLD)
    )


def _tree_entry(path: str, entry: Entry, last_commit: Commit | None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "file", "oid": entry.oid, "size": entry.size, "path": path}
    if entry.lfs:
        item["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": len(lfs_pointer(entry.sha256, 0))}
    if last_commit is not None:
        item["lastCommit"] = {"id": last_commit.id, "title": last_commit.title, "date": last_commit.date}
    return item


def _folder_entry(path: str, files: dict[str, Entry]) -> dict[str, Any]:
    inside = sorted((name, entry.oid) for name, entry in files.items() if name.startswith(path + "/"))
    return {"type": "directory", "oid": hashlib.sha1(json.dumps(inside).encode()).hexdigest(), "path": path}


def _last_commit(repo: Repo, head: Commit, path: str) -> Commit:
    """The newest commit (from ``head`` back) that changed ``path``."""
    commit = head
    while commit.parent is not None:
        parent = repo.commits[commit.parent]
        if parent.files.get(path) != commit.files.get(path):
            return commit
        commit = parent
    return commit


def create_app(state: HubState) -> Flask:
    """The Flask application serving ``state``."""
    app = Flask("wm_hub_test_hub")

    @app.errorhandler(HubError)
    def hub_error(error: HubError):
        headers = {"X-Error-Message": error.message}
        if error.code:
            headers["X-Error-Code"] = error.code
        return Response(json.dumps({"error": error.message}), error.status, headers, mimetype="application/json")

    @app.before_request
    def record_and_inject():
        state.requests.append((request.method, request.path))
        name = _endpoint_name(request.path)
        status = state.take_failure(name) if name else None
        if status is not None:
            raise HubError(status, f"injected failure of the {name} endpoint")

    def repo_from(kind: str, namespace: str, name: str, write: bool = False) -> Repo:
        if kind not in REPO_TYPES:
            raise HubError(404, f"unknown repo type {kind}")
        return state.repo(REPO_TYPES[kind], f"{namespace}/{name}", write=write)

    def base_url(repo: Repo) -> str:
        return f"{request.host_url}{URL_PREFIXES[repo.repo_type]}{repo.repo_id}"

    # -- repositories ------------------------------------------------------------------------------------------
    @app.post("/api/repos/create")
    def create_repo():
        state.require_auth()
        payload = request.get_json(force=True)
        repo_type = payload.get("type") or "model"
        if repo_type not in URL_PREFIXES or not payload.get("name") or not payload.get("organization"):
            raise HubError(400, f"bad repo creation request {payload}")
        repo_id = f"{payload['organization']}/{payload['name']}"
        with state.lock:
            if (repo_type, repo_id) in state.repos:  # the Hub's 409 names the existing repo's url too
                url = base_url(state.repos[(repo_type, repo_id)])
                body = {"error": "You already created this repo", "url": url}
                return Response(json.dumps(body), 409, mimetype="application/json")
            private = payload.get("visibility") == "private" or bool(payload.get("private"))
            repo = Repo(repo_type, repo_id, private, _now())
            files = {".gitattributes": state.store(GITATTRIBUTES.encode(), lfs=False)}
            state.new_commit(repo, "main", None, files, "initial commit", "")
            state.repos[(repo_type, repo_id)] = repo
        return {"url": base_url(repo), "name": repo_id, "id": repo_id}

    @app.post("/api/validate-yaml")
    def validate_yaml():
        import yaml

        content = request.get_json(force=True).get("content", "")
        match = re.match(r"^---\s*\n(.*?)\n---\s*\n", content, re.DOTALL)
        if match is None:
            return {"warnings": [{"message": "empty or missing yaml metadata in repo card"}], "errors": []}
        try:
            metadata = yaml.safe_load(match.group(1))
        except yaml.YAMLError as error:
            return Response(json.dumps({"errors": [{"message": str(error)}]}), 400, mimetype="application/json")
        if not isinstance(metadata, dict):
            return Response(
                json.dumps({"errors": [{"message": "metadata must be a mapping"}]}), 400, mimetype="application/json"
            )
        return {"warnings": [], "errors": []}

    @app.get("/api/<kind>/<namespace>/<name>")
    @app.get("/api/<kind>/<namespace>/<name>/revision/<path:revision>")
    def repo_info(kind: str, namespace: str, name: str, revision: str = "main"):
        with state.lock:
            repo = repo_from(kind, namespace, name)
            commit = state.commit(repo, revision)
            siblings = []
            for path, entry in sorted(commit.files.items()):
                sibling: dict[str, Any] = {"rfilename": path}
                if request.args.get("blobs"):
                    sibling.update(size=entry.size, blobId=entry.oid)
                    if entry.lfs:
                        sibling["lfs"] = {"size": entry.size, "sha256": entry.sha256, "pointerSize": 134}
                siblings.append(sibling)
            card = None
            if "README.md" in commit.files:
                card = _card_data(state.blobs[commit.files["README.md"].sha256].decode())
        info = {
            "id": repo.repo_id,
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "author": repo.repo_id.split("/")[0],
            "sha": commit.id,
            "lastModified": commit.date,
            "createdAt": repo.created_at,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": (card or {}).get("tags") or [],
            "siblings": siblings,
        }
        if card is not None:
            info["cardData"] = card
        return info

    @app.get("/api/<kind>/<namespace>/<name>/tree/<revision>")
    @app.get("/api/<kind>/<namespace>/<name>/tree/<revision>/<path:path>")
    def tree(kind: str, namespace: str, name: str, revision: str, path: str = ""):
        recursive = request.args.get("recursive", "false").lower() in ("1", "true")
        expand = request.args.get("expand", "false").lower() in ("1", "true")
        with state.lock:
            repo = repo_from(kind, namespace, name)
            commit = state.commit(repo, revision)
            prefix = f"{path.strip('/')}/" if path.strip("/") else ""
            inside = {p: e for p, e in commit.files.items() if p.startswith(prefix)}
            if prefix and not inside:
                raise HubError(404, f"{path} does not exist on {revision}", "EntryNotFound")
            items, folders = [], set()
            for file_path, entry in sorted(inside.items()):
                rest = file_path[len(prefix) :]
                if "/" in rest and not recursive:
                    folders.add(prefix + rest.split("/", 1)[0])
                    continue
                if recursive:
                    parts = rest.split("/")[:-1]
                    folders.update(prefix + "/".join(parts[: i + 1]) for i in range(len(parts)))
                last = _last_commit(repo, commit, file_path) if expand else None
                items.append(_tree_entry(file_path, entry, last))
            items += [_folder_entry(folder, commit.files) for folder in sorted(folders)]
        return Response(json.dumps(items), mimetype="application/json")

    @app.post("/api/<kind>/<namespace>/<name>/paths-info/<revision>")
    def paths_info(kind: str, namespace: str, name: str, revision: str):
        paths = request.form.getlist("paths") if request.form else (request.get_json(force=True) or {}).get("paths")
        expand = str(request.form.get("expand", "false")).lower() in ("1", "true")
        with state.lock:
            repo = repo_from(kind, namespace, name)
            commit = state.commit(repo, revision)
            items = []
            for path in paths or []:
                path = path.strip("/")
                if path in commit.files:
                    last = _last_commit(repo, commit, path) if expand else None
                    items.append(_tree_entry(path, commit.files[path], last))
                elif any(name.startswith(path + "/") for name in commit.files):
                    items.append(_folder_entry(path, commit.files))
        return Response(json.dumps(items), mimetype="application/json")

    @app.get("/api/<kind>/<namespace>/<name>/refs")
    def refs(kind: str, namespace: str, name: str):
        with state.lock:
            repo = repo_from(kind, namespace, name)
            branches = [
                {"name": branch, "ref": f"refs/heads/{branch}", "targetCommit": commit_id}
                for branch, commit_id in sorted(repo.branches.items())
            ]
        return {"branches": branches, "tags": [], "converts": [], "pullRequests": []}

    @app.get("/api/<kind>/<namespace>/<name>/commits/<revision>")
    def commits(kind: str, namespace: str, name: str, revision: str):
        with state.lock:
            repo = repo_from(kind, namespace, name)
            commit: Commit | None = state.commit(repo, revision)
            history = []
            while commit is not None:
                history.append(
                    {
                        "id": commit.id,
                        "title": commit.title,
                        "message": commit.message,
                        "authors": [{"user": USER}],
                        "date": commit.date,
                    }
                )
                commit = repo.commits[commit.parent] if commit.parent else None
        return Response(json.dumps(history), mimetype="application/json")

    @app.post("/api/<kind>/<namespace>/<name>/branch/<branch>")
    def create_branch(kind: str, namespace: str, name: str, branch: str):
        with state.lock:
            repo = repo_from(kind, namespace, name, write=True)
            if "/" in branch or not branch:
                raise HubError(400, f"invalid branch name {branch!r} (this test hub refuses '/')")
            if branch in repo.branches:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            start = (request.get_json(silent=True) or {}).get("startingPoint") or "main"
            repo.branches[branch] = state.commit(repo, start).id
        return {}

    @app.delete("/api/<kind>/<namespace>/<name>/branch/<branch>")
    def delete_branch(kind: str, namespace: str, name: str, branch: str):
        with state.lock:
            repo = repo_from(kind, namespace, name, write=True)
            if branch == "main" or branch not in repo.branches:
                raise HubError(404 if branch != "main" else 403, f"cannot delete branch {branch}", "RevisionNotFound")
            del repo.branches[branch]
        return {}

    # -- uploads -----------------------------------------------------------------------------------------------
    @app.post("/api/<kind>/<namespace>/<name>/preupload/<revision>")
    def preupload(kind: str, namespace: str, name: str, revision: str):
        if request.args.get("create_pr"):
            raise HubError(400, "pull requests are not supported by the test hub")
        files = request.get_json(force=True)["files"]
        with state.lock:
            repo = repo_from(kind, namespace, name, write=True)
            commit = state.commit(repo, revision)
            answer = []
            for item in files:
                sample = base64.b64decode(item.get("sample", ""))
                lfs = _is_lfs(item["path"], int(item["size"]), sample)
                current = commit.files.get(item["path"])
                oid = current.remote_oid() if current is not None and current.lfs == lfs else None
                answer.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False})
                answer[-1]["oid"] = oid
        return {"files": answer, "commitOid": commit.id}

    @app.post("/<namespace>/<name>.git/info/lfs/objects/batch")
    @app.post("/<kind_prefix>/<namespace>/<name>.git/info/lfs/objects/batch")
    def lfs_batch(namespace: str, name: str, kind_prefix: str = "models"):
        repo_from(kind_prefix, namespace, name, write=True)
        payload = request.get_json(force=True)
        if payload.get("operation") != "upload":
            raise HubError(400, "the test hub serves LFS uploads only (downloads go through /resolve)")
        objects = []
        for item in payload["objects"]:
            oid, size = item["oid"], int(item["size"])
            answer: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if oid not in state.blobs:
                answer["actions"] = {
                    "upload": {"href": f"{request.host_url}_lfs/{oid}?size={size}"},
                    "verify": {"href": f"{request.host_url}_lfs/{oid}/verify"},
                }
            objects.append(answer)
        return Response(json.dumps({"transfer": "basic", "objects": objects}), mimetype="application/vnd.git-lfs+json")

    @app.put("/_lfs/<oid>")
    def lfs_upload(oid: str):
        data = request.get_data()
        if hashlib.sha256(data).hexdigest() != oid or len(data) != int(request.args.get("size", len(data))):
            raise HubError(400, f"LFS object {oid}: content does not match its sha256/size")
        with state.lock:
            state.blobs.setdefault(oid, data)
        return Response(status=200)

    @app.post("/_lfs/<oid>/verify")
    def lfs_verify(oid: str):
        state.require_auth()
        payload = request.get_json(force=True)
        if oid not in state.blobs or len(state.blobs[oid]) != int(payload["size"]):
            raise HubError(404, f"LFS object {oid} was not uploaded")
        return {}

    @app.post("/api/<kind>/<namespace>/<name>/commit/<revision>")
    def commit(kind: str, namespace: str, name: str, revision: str):
        if request.args.get("create_pr"):
            raise HubError(400, "pull requests are not supported by the test hub")
        lines = [json.loads(line) for line in request.get_data().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "a commit starts with a header line")
        header = lines[0]["value"]
        with state.lock:
            repo = repo_from(kind, namespace, name, write=True)
            if revision not in repo.branches:
                raise HubError(404, f"Invalid rev id: {revision} (commits go to a branch)", "RevisionNotFound")
            head = state.commit(repo, revision)
            if header.get("parentCommit") not in (None, head.id):
                raise HubError(412, f"A commit has happened since {header['parentCommit']}; head is now {head.id}")
            files = dict(head.files)
            for line in lines[1:]:
                key, value = line["key"], line["value"]
                path = value["path"].strip("/")
                if key == "file":
                    files[path] = state.store(base64.b64decode(value["content"]), lfs=False)
                elif key == "lfsFile":
                    data = state.blobs.get(value["oid"])
                    if data is None:
                        raise HubError(422, f"{path}: LFS object {value['oid']} was never uploaded")
                    files[path] = state.store(data, lfs=True)
                elif key == "deletedFile":
                    if path not in files:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    del files[path]
                elif key == "deletedFolder":
                    files = {p: e for p, e in files.items() if not p.startswith(path + "/")}
                else:
                    raise HubError(400, f"unknown commit operation {key!r}")
            new = state.new_commit(
                repo, revision, head, files, header.get("summary") or "", header.get("description") or ""
            )
        return {
            "success": True,
            "commitOid": new.id,
            "commitUrl": f"{base_url(repo)}/commit/{new.id}",
            "pullRequestUrl": None,
        }

    # -- downloads ---------------------------------------------------------------------------------------------
    @app.route("/<namespace>/<name>/resolve/<revision>/<path:path>", methods=["GET", "HEAD"])
    @app.route("/<kind_prefix>/<namespace>/<name>/resolve/<revision>/<path:path>", methods=["GET", "HEAD"])
    def resolve(namespace: str, name: str, revision: str, path: str, kind_prefix: str = "models"):
        with state.lock:
            repo = repo_from(kind_prefix, namespace, name)
            commit = state.commit(repo, revision)
            entry = commit.files.get(path)
            if entry is None:
                raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
            data = state.blobs[entry.sha256]
        headers = {
            "X-Repo-Commit": commit.id,
            "ETag": f'"{entry.sha256 if entry.lfs else entry.oid}"',
            "Accept-Ranges": "bytes",
        }
        status, body = 200, data
        ranged = re.fullmatch(r"bytes=(\d*)-(\d*)", request.headers.get("Range", ""))
        if ranged and (ranged.group(1) or ranged.group(2)):
            if ranged.group(1):
                start = int(ranged.group(1))
                end = min(int(ranged.group(2)), len(data) - 1) if ranged.group(2) else len(data) - 1
            else:  # suffix range: the last N bytes
                start, end = max(0, len(data) - int(ranged.group(2))), len(data) - 1
            if start >= len(data):
                return Response(status=416, headers={"Content-Range": f"bytes */{len(data)}", **headers})
            status, body = 206, data[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        response = Response(body, status, headers, mimetype="application/octet-stream")
        response.headers["Content-Length"] = str(len(body))
        return response

    return app


def _endpoint_name(path: str) -> str | None:
    """The name :meth:`HubServer.fail_next` uses for a request path (``commit``, ``preupload``, ``resolve``...)."""
    for name in ("commit", "preupload", "paths-info", "tree", "refs", "branch", "resolve"):
        if f"/{name}/" in path:
            return name
    if path.endswith("/objects/batch"):
        return "lfs-batch"
    if path.startswith("/_lfs/"):
        return "lfs-verify" if path.endswith("/verify") else "lfs-upload"
    if path == "/api/repos/create":
        return "create"
    return None


def _card_data(readme: str) -> dict[str, Any] | None:
    import yaml

    match = re.match(r"^---\s*\n(.*?)\n---\s*\n", readme, re.DOTALL)
    try:
        data = yaml.safe_load(match.group(1)) if match else None
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr (tests read the calls from ``HubState.requests``)."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class HubServer:
    """The test hub on ``127.0.0.1`` in a background thread.

    Args:
        port: TCP port (0 picks a free one).
        token: The token writes must present (``HF_TOKEN`` of the clients).

    Attributes:
        url: ``http://127.0.0.1:<port>`` (the clients' ``HF_ENDPOINT``).
        state: The repositories and blobs (tests read them directly).
    """

    def __init__(self, port: int = 0, token: str = DEFAULT_TOKEN):
        self.state = HubState(token)
        self.token = token
        self._server = make_server(
            "127.0.0.1", port, create_app(self.state), threaded=True, request_handler=_QuietHandler
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="test-hub", daemon=True)

    def start(self) -> HubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_next(self, endpoint: str, status: int = 500, times: int = 1) -> None:
        """Make the next ``times`` calls of ``endpoint`` (``commit``, ``preupload``, ``lfs-batch``...) fail."""
        with self.state.lock:
            self.state.failures.setdefault(endpoint, []).extend([status] * times)

    def head(self, repo_id: str, repo_type: str = "model", branch: str = "main") -> str:
        """The commit id a branch points at."""
        return self.state.repos[(repo_type, repo_id)].branches[branch]

    def history(self, repo_id: str, repo_type: str = "model", branch: str = "main") -> list[Commit]:
        """The commits of a branch, newest first."""
        repo = self.state.repos[(repo_type, repo_id)]
        commit: Commit | None = repo.commits[repo.branches[branch]]
        commits = []
        while commit is not None:
            commits.append(commit)
            commit = repo.commits[commit.parent] if commit.parent else None
        return commits

    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        """Path -> content of the files at a branch or commit."""
        repo = self.state.repos[(repo_type, repo_id)]
        commit = repo.commits[repo.branches.get(revision, revision)]
        return {path: self.state.blobs[entry.sha256] for path, entry in commit.files.items()}


# ----------------------------------------------------------------------------------------------------------------
# pytest fixtures (import them into a test module: ``from hub_server import hub, hub_env, run_client``)
# ----------------------------------------------------------------------------------------------------------------
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


@pytest.fixture(scope="session")
def hub():
    """The test hub, one per test session."""
    with HubServer() as server:
        yield server


@pytest.fixture(scope="session")
def hub_env(hub, tmp_path_factory):
    """The environment of a client process of ``hub``: endpoint, token, no Xet, isolated caches, online."""
    home = tmp_path_factory.mktemp("hf-home")
    env = {name: value for name, value in os.environ.items() if name not in OFFLINE_VARIABLES}
    env.update(
        HF_ENDPOINT=hub.url,
        HF_TOKEN=hub.token,
        HF_HUB_DISABLE_XET="1",
        HF_HOME=str(home),
        HF_MODULES_CACHE=str(home / "modules"),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


def run_client(env: dict[str, str], script: str, *args: str, timeout: float = 300) -> Any:
    """Run ``script`` in a fresh Python process with ``env``; it gets ``args`` then an output path in ``sys.argv``
    and writes JSON there, which is returned. Fails the test with the process's output if it fails."""
    with tempfile.TemporaryDirectory() as tmp:
        path, out = Path(tmp) / "client.py", Path(tmp) / "out.json"
        path.write_text(script)
        process = subprocess.run(
            [sys.executable, str(path), *args, str(out)], env=env, capture_output=True, text=True, timeout=timeout
        )
        if process.returncode != 0 or not out.is_file():
            pytest.fail(
                f"client process failed ({process.returncode}):\n{process.stdout[-3000:]}\n{process.stderr[-6000:]}"
            )
        token = env.get("HF_TOKEN")
        if token and (token in process.stdout or token in process.stderr):
            pytest.fail("the client process printed HF_TOKEN")
        return json.loads(out.read_text())


if __name__ == "__main__":
    import argparse
    import time

    parser = argparse.ArgumentParser(description="Run the local test hub until interrupted.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    args = parser.parse_args()
    with HubServer(args.port, args.token) as hub:
        print(f"HF_ENDPOINT={hub.url} HF_TOKEN={args.token} HF_HUB_DISABLE_XET=1", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
