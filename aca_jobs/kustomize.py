"""Render a Kustomize directory offline: the subset of Kustomize that infra/k8s uses.

No package on the registries this project installs from carries the `kustomize` binary (the
PyPI wrappers download it at run time), so the tests render the overlays with this module and
`kubectl apply -k` renders them with the real Kustomize. Both agree because infra/k8s only uses:

- `resources`: YAML files (any number of documents) and directories holding a kustomization;
- `images`: `name` -> `newName` / `newTag` on every container and init container;
- `patches`: a `path` to patches of resources (matched by kind and name), merged as RFC 7386
  merge patches. For custom resources Kustomize has no list merge keys, so its strategic
  merge replaces lists whole, exactly like a merge patch; for built-in kinds the two agree
  only while the patch holds no list, so a built-in kind's patch with a list is refused
  rather than rendered differently.

Anything else in a kustomization is an error, so the subset cannot drift silently.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION = "kustomization.yaml"
SUPPORTED_FIELDS = frozenset({"apiVersion", "kind", "resources", "images", "patches"})
# API groups whose kinds Kustomize patches with list merge keys (strategic merge).
BUILT_IN_GROUPS = frozenset({"v1", "apps/v1", "batch/v1", "autoscaling/v2", "policy/v1"})

Resource = dict[str, Any]


class KustomizeError(ValueError):
    """A kustomization uses a feature outside the supported subset, or a patch misses."""


def load_documents(path: Path) -> list[Resource]:
    """The non-empty YAML documents of one file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, null deletes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def _containers(resource: Resource) -> list[dict[str, Any]]:
    spec = resource.get("spec", {})
    if resource.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def _set_images(resources: list[Resource], images: list[dict[str, str]]) -> None:
    for resource in resources:
        for container in _containers(resource):
            name, _, tag = container["image"].partition(":")
            for image in images:
                if image["name"] == name:
                    new_name = image.get("newName", name)
                    new_tag = image.get("newTag", tag)
                    container["image"] = f"{new_name}:{new_tag}" if new_tag else new_name


def _has_list(node: Any) -> bool:
    if isinstance(node, list):
        return True
    return isinstance(node, dict) and any(_has_list(v) for v in node.values())


def _apply_patch(resources: list[Resource], patch: Resource) -> None:
    if patch.get("apiVersion") in BUILT_IN_GROUPS and _has_list(patch):
        raise KustomizeError(f"a list in a patch of built-in {patch.get('kind')}: not supported")
    name = patch.get("metadata", {}).get("name")
    for i, resource in enumerate(resources):
        if resource.get("kind") == patch.get("kind") and resource["metadata"]["name"] == name:
            resources[i] = merge_patch(resource, patch)
            return
    raise KustomizeError(f"patch target {patch.get('kind')}/{name} not found")


def render(directory: Path) -> list[Resource]:
    """The resources `kubectl kustomize <directory>` would output, in resource order."""
    kustomization: Resource = yaml.safe_load((directory / KUSTOMIZATION).read_text())
    unknown = set(kustomization) - SUPPORTED_FIELDS
    if unknown:
        raise KustomizeError(f"{directory}: unsupported fields {sorted(unknown)}")
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        resources.extend(render(path) if path.is_dir() else load_documents(path))
    _set_images(resources, kustomization.get("images", []))
    for patch in kustomization.get("patches", []):
        if set(patch) != {"path"}:
            raise KustomizeError(f"{directory}: only `path` patches are supported")
        for document in load_documents(directory / patch["path"]):
            _apply_patch(resources, document)
    return resources
