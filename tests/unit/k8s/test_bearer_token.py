"""The bearer token a kubeconfig's user presents, as the CLI sends it to ``serve --auth kubernetes``
(the kubeconfig loaded by the official client; no API server is contacted)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from taskaction_operator.k8s import bearer_token


def kubeconfig(path: Path, user: dict[str, Any]) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_a_token_user_gives_its_token(tmp_path: Path) -> None:
    assert bearer_token(kubeconfig(tmp_path / "k", {"token": "abc.def"})) == "abc.def"


def test_an_exec_plugin_gives_the_token_it_prints(tmp_path: Path) -> None:
    credential = tmp_path / "cred.json"
    credential.write_text(
        json.dumps(
            {
                "apiVersion": "client.authentication.k8s.io/v1",
                "kind": "ExecCredential",
                "status": {"token": "xyz"},
            }
        )
    )
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "cat",
            "args": [str(credential)],
            "interactiveMode": "Never",
        }
    }
    assert bearer_token(kubeconfig(tmp_path / "k", user)) == "xyz"


def test_a_user_without_a_token_gives_none(tmp_path: Path) -> None:
    assert bearer_token(kubeconfig(tmp_path / "k", {"username": "u", "password": "p"})) is None
    assert bearer_token(kubeconfig(tmp_path / "k2", {})) is None


def test_a_kubeconfig_that_does_not_load_raises(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="kube"):
        bearer_token(str(tmp_path / "absent"))
