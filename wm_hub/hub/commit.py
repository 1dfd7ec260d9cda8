"""The one commit of a push: staging and ``create_commit`` against the head it started from (see :mod:`wm_hub.hub`)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


@dataclass
class PushResult:
    """What a push did.

    Attributes:
        repo_id: The repository.
        repo_type: ``model`` or ``dataset``.
        revision: The branch pushed to.
        commit: The branch head after the push (the new commit, or the unchanged head).
        created_commit: ``False`` when the remote already held exactly this content.
        url: The commit's URL (``None`` when no commit was made).
        uploaded: Paths added or changed by the commit.
        deleted: Paths removed by the commit.
    """

    repo_id: str
    repo_type: str
    revision: str
    commit: str
    created_commit: bool
    url: str | None = None
    uploaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _remote_files(api: Any, repo_id: str, repo_type: str, revision: str) -> dict[str, str]:
    """path -> the Hub's blob id of every file of ``revision``."""
    from huggingface_hub.hf_api import RepoFile

    tree = api.list_repo_tree(repo_id, repo_type=repo_type, revision=revision, recursive=True)
    return {item.path: item.blob_id for item in tree if isinstance(item, RepoFile)}


def commit_folder(
    staging: Path,
    repo_id: str,
    *,
    repo_type: str,
    revision: str | None = None,
    private: bool = False,
    commit_message: str,
    owns: Callable[[str], bool] = lambda path: path != ".gitattributes",
    token: str | None = None,
) -> PushResult:
    """Make the remote branch hold ``staging``'s files, in one commit, or in none if it already does.

    Every staged file goes to ``HfApi.create_commit`` with ``parent_commit`` set to the head the deletions were
    computed against; ``huggingface_hub`` drops the files whose content the remote already holds (it compares
    the hashes the Hub reports at pre-upload) and makes no commit at all when nothing is left.

    Args:
        staging: The files to publish, laid out as in the repository.
        repo_id: ``org/name`` (a bare ``name`` is created in the token owner's namespace); created (``private`` as
            asked) if missing.
        repo_type: ``model`` or ``dataset``.
        revision: Branch to push to (created from ``main`` if missing); ``None`` is ``main``.
        private: Visibility of a repository this push creates (an existing one keeps its visibility).
        commit_message: The commit's title.
        owns: Which remote paths this push is responsible for: those missing from ``staging`` are deleted.
        token: A token; ``None`` uses ``HF_TOKEN`` or the login cache.

    Returns:
        The push's outcome.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    api = HfApi(token=token)
    branch = revision or "main"
    repo_id = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True).repo_id
    if branch != "main":
        api.create_branch(repo_id, repo_type=repo_type, branch=branch, exist_ok=True)
    head = api.repo_info(repo_id, repo_type=repo_type, revision=branch).sha
    before = _remote_files(api, repo_id, repo_type, head)
    local = {path.relative_to(staging).as_posix(): path for path in sorted(staging.rglob("*")) if path.is_file()}
    operations: list[Any] = [CommitOperationAdd(name, str(path)) for name, path in local.items()]
    operations += [CommitOperationDelete(name) for name in before if name not in local and owns(name)]
    info = api.create_commit(
        repo_id,
        operations,
        commit_message=commit_message,
        repo_type=repo_type,
        revision=branch,
        parent_commit=head,
    )
    result = PushResult(repo_id, repo_type, branch, head, created_commit=False)
    if info.oid == head:
        logger.info("%s@%s already holds this content: no commit", repo_id, branch)
        return result
    after = _remote_files(api, repo_id, repo_type, info.oid)
    uploaded = [name for name, blob in after.items() if before.get(name) != blob]
    deleted = [name for name in before if name not in after]
    return dataclasses.replace(
        result, commit=info.oid, created_commit=True, url=info.commit_url, uploaded=uploaded, deleted=deleted
    )


def stage_file(source: str | Path, target: str | Path) -> None:
    """Put ``source`` at ``target`` in a staging folder without copying its bytes (weights can be many GB): a hard
    link, or a symlink across file systems. The upload reads the original file."""
    try:
        os.link(source, target)
    except OSError:
        os.symlink(Path(source).resolve(), target)


def copy_tree(source: Path, target: Path, ignore: Sequence[str] = ()) -> None:
    shutil.copytree(
        source, target, ignore=shutil.ignore_patterns(*ignore), dirs_exist_ok=True, copy_function=stage_file
    )


def write_json(path: Path, value: Any) -> None:
    """Write a staged JSON file; a staged link to the user's file is replaced, never written through."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def wm_hub_version() -> str:
    from importlib.metadata import version

    return version("wm-hub")


def require_online() -> None:
    """A push needs the Hub: fail before any work when ``HF_HUB_OFFLINE`` is set."""
    from huggingface_hub import constants
    from huggingface_hub.errors import OfflineModeIsEnabled

    if constants.HF_HUB_OFFLINE:
        raise OfflineModeIsEnabled("HF_HUB_OFFLINE is set: a push needs the Hub (unset HF_HUB_OFFLINE to push)")


def push_failure(error: Exception) -> str | None:
    """One line telling whoever pushed why the push failed, or ``None`` for an error nobody planned for (a bug).

    Any of these leaves the repository as it was (the push is one commit), so a rerun retries: a connection that
    fails (refused, DNS, timeout; the endpoint is named, ``HF_ENDPOINT`` selects another Hub), an HTTP error of the
    Hub (its status is named), ``HF_HUB_OFFLINE``, and a folder or its metadata that cannot be published.
    """
    from httpx2 import TransportError  # huggingface_hub's HTTP client: connection refused, DNS, timeouts
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(error, TransportError):
        endpoint = os.environ.get("HF_ENDPOINT", constants.ENDPOINT)
        return (
            f"cannot reach the Hub at {endpoint} ({type(error).__name__}: {error}); nothing was committed, rerun to "
            "retry"
        )
    if isinstance(error, (FileNotFoundError, ValueError, OfflineModeIsEnabled)):
        return str(error)
    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code if error.response is not None else "?"
        return f"the Hub answered {status} ({str(error).splitlines()[0]}); nothing was committed, rerun to retry"
    return None
