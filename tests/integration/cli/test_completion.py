"""Shell completion against the real PostgreSQL: bash's own completion machinery sources the script
``taskaction-operator completion bash`` prints and calls its completion function, which runs the
real program; it offers subcommands, options, and the run and action names recorded in the database.

zsh and fish are not on this machine: their scripts are checked to speak the same protocol (they set
``_ARGCOMPLETE_SHELL`` to their name and run the program), and the program's answer in each shell's
format is checked by running it as those scripts do.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from taskaction_operator.repo import ActionRepo
from tests.conftest import ROOT
from tests.integration.repo.helpers import make_run, run

pytestmark = pytest.mark.db
BIN = ROOT / ".venv" / "bin"
CLI = BIN / "taskaction-operator"

#: Complete the line in $1 (cursor at its end) as bash does on TAB, and print one candidate a line.
BASH_DRIVER = r"""
set -u
source <(taskaction-operator completion bash)
line=$1
read -ra COMP_WORDS <<<"$line"
[[ "$line" == *" " ]] && COMP_WORDS+=("")
COMP_LINE=$line COMP_POINT=${#line} COMP_TYPE=9 COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
spec=$(complete -p taskaction-operator)
[[ "$spec" == *"-F _python_argcomplete taskaction-operator" ]] || { echo "unregistered: $spec" >&2; exit 3; }
_python_argcomplete taskaction-operator "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""


def env_for(dsn: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKACTION_", "_ARC"))}
    env.update(
        TASKACTION_DATABASE_URL=dsn,
        TASKACTION_CONFIG=str(tmp_path / "none.yaml"),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def bash_complete(line: str, dsn: str, tmp_path: Path) -> list[str]:
    bash = shutil.which("bash")
    assert bash, "bash is needed"
    proc = subprocess.run(
        [bash, "-c", BASH_DRIVER, "complete", line],
        capture_output=True, text=True, env=env_for(dsn, tmp_path), cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return [w.strip() for w in proc.stdout.splitlines() if w.strip()]


async def test_bash_completes_commands_options_runs_and_actions_from_the_database(
    repo: ActionRepo, repo_dsn: str, project: str, tmp_path: Path
) -> None:
    await make_run(repo, run(project, "rcompletes"))
    await make_run(repo, run(project, "rcompleted"))
    await make_run(repo, run(project, "rother"))
    scope = f"--project {project} --domain development"

    async def complete(line: str) -> list[str]:
        return await asyncio.to_thread(bash_complete, f"taskaction-operator {line}", repo_dsn, tmp_path)

    assert await complete("ru") == ["run", "runs"]
    assert set(await complete("runs ")) == {"list", "get", "tree", "watch", "wait"}
    assert "--older-than" in await complete("prune --ol")
    assert sorted(await complete(f"runs tree {scope} rcomp")) == ["rcompleted", "rcompletes"]
    assert sorted(await complete(f"events {scope} rcompletes a")) == ["a0", "a1", "a1-1"]
    assert project in await complete(f"runs list --project {project[:10]}")


def test_a_database_that_does_not_answer_completes_nothing_and_prints_nothing(tmp_path: Path) -> None:
    line = "taskaction-operator runs tree --project p --domain d r"
    assert bash_complete(line, "postgresql://nobody@127.0.0.1:1/none", tmp_path) == []


@pytest.mark.parametrize("shell", ["zsh", "fish"])
async def test_zsh_and_fish_scripts_run_the_program_which_answers_in_their_format(
    repo: ActionRepo, repo_dsn: str, project: str, tmp_path: Path, shell: str
) -> None:
    await make_run(repo, run(project, "rzf"))
    await asyncio.to_thread(program_side, shell, project, repo_dsn, tmp_path)


def program_side(shell: str, project: str, dsn: str, tmp_path: Path) -> None:
    script = subprocess.run(
        [str(CLI), "completion", shell], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    assert "taskaction-operator" in script and "_ARGCOMPLETE" in script
    assert (f'_ARGCOMPLETE_SHELL="{shell}"' if shell == "zsh" else f"_ARGCOMPLETE_SHELL {shell}") in script
    line = f"taskaction-operator runs get --project {project} --domain development rz"
    out = tmp_path / "answer"
    env = env_for(dsn, tmp_path)
    env.update(
        _ARGCOMPLETE="1", _ARGCOMPLETE_SHELL=shell, _ARGCOMPLETE_STDOUT_FILENAME=str(out),
        COMP_LINE=line, COMP_POINT=str(len(line)),
    )  # fmt: skip
    # What each script sets besides (argcomplete's shellcode): zsh splits candidates on \v and hands
    # them to _describe as NAME:DESCRIPTION; fish takes one a line, NAME<tab>DESCRIPTION.
    env.update(_ARGCOMPLETE_SUPPRESS_SPACE="1")
    if shell == "zsh":
        env.update(IFS="\v")
        assert "_ARGCOMPLETE_SUPPRESS_SPACE=1" in script and '_describe "${words[1]}" completions' in script
    else:
        env.update(_ARGCOMPLETE_DFS="\t", _ARGCOMPLETE_IFS="\n")
        assert "set -lx _ARGCOMPLETE_IFS \\n" in script and "set -lx _ARGCOMPLETE_SUPPRESS_SPACE 1" in script
    proc = subprocess.run(
        [str(CLI)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == ("rzf:" if shell == "zsh" else "rzf\t")


def test_completion_refuses_an_unknown_shell(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(CLI), "completion", "tcsh"], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 2
    assert "invalid choice: 'tcsh'" in proc.stderr
