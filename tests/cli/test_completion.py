"""`pilothouse completion bash|zsh|fish`, loaded into the real shells.

bash and fish are driven as a user's TAB drives them (bash: the registered function with
COMP_WORDS/COMP_CWORD, as `complete -F` calls it; fish: `complete -C`, fish's own query of its
completions). zsh's `compadd` exists only inside a completion widget, which needs a terminal: the
script is loaded by the real zsh (compinit, compdef) and its function run there with `words` and
`CURRENT` set as zsh sets them, `compadd` and `_files` replaced by functions that print what
they are given; `test_zsh_completes_at_a_terminal` then types TAB into an interactive zsh on a
pseudo-terminal, with no stand-in, and reads the line zsh completed.
"""

from __future__ import annotations

import functools
import os
import pty
import select
import shlex
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from pilothouse.cli._tree import pilothouse
from pilothouse.validation import plain
from tests.helpers import PILOTHOUSE, ROOT


def shell(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent)
    assert result.returncode == 0, result.stderr
    return result.stdout


@functools.cache
def script_file(name: str) -> str:
    """The script `pilothouse completion NAME` prints, generated once and kept in a file."""
    path = Path(tempfile.mkdtemp(prefix="pilothouse-completion-")) / name
    path.write_text(shell([*PILOTHOUSE, "completion", name]))
    return shlex.quote(str(path))


def bash(*lines: str) -> str:
    return shell(["bash", "-c", "\n".join([f"source {script_file('bash')}", *lines])])


def tab(words: tuple[str, ...]) -> str:
    """Bash lines doing what TAB does after `words` (the last is the word being completed), then
    printing the offers on one line."""
    array = " ".join(shlex.quote(w) for w in words)
    return (
        f"COMP_WORDS=({array}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); COMPREPLY=(); "
        '_pilothouse; echo "${COMPREPLY[*]}"'
    )


def bash_complete(*words: str) -> list[str]:
    return bash(tab(words)).split()


def test_bash_registers_the_completion() -> None:
    """As a user's ~/.bashrc loads it."""
    command = " ".join(map(shlex.quote, [*PILOTHOUSE, "completion", "bash"]))
    out = shell(["bash", "-c", f"source <({command}); complete -p pilothouse"])
    assert out.strip() == "complete -o filenames -F _pilothouse pilothouse"


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (("pilothouse", "ge"), ["generate"]),
        (("pilothouse", "generate", ""), ["context", "deploy", "monitoring"]),
        (("pilothouse", "generate", "deploy", "--d"), ["--dry-run", "--diff"]),
        (("pilothouse", "validate", "--format", ""), ["text", "json"]),
        (("pilothouse", "jobs", "list", "--state", "r"), ["running"]),
        (("pilothouse", "jobs", "dr"), ["drain"]),
        (("pilothouse", "jobs", "-h", "st"), ["status"]),
        (("pilothouse", "completion", ""), ["bash", "zsh", "fish"]),
        # after an option that takes a value, its value is a file name
        (("pilothouse", "serve", "--config", "test_compl"), ["test_completion.py"]),
    ],
)
def test_bash_completes_commands_options_and_values(words: tuple[str, ...], expected: list[str]) -> None:
    assert bash_complete(*words) == expected


def test_bash_completion_follows_the_parser() -> None:
    """Every command with subcommands offers exactly those, every command its options."""
    commands = list(pilothouse().walk())
    queries = []
    for command in commands:
        queries += [tab(("pilothouse", *command.path, "")), tab(("pilothouse", *command.path, "--"))]
    answers = bash(*queries).splitlines()
    for i, command in enumerate(commands):
        subs, options = answers[2 * i].split(), answers[2 * i + 1].split()
        if command.subcommands:
            assert subs == [s.path[-1] for s in command.subcommands], command.name
        flags = [flag for option in command.options for flag in option.flags if flag.startswith("--")]
        assert [w for w in options if w.startswith("--")] == flags, command.name


def test_zsh_completes_in_zsh() -> None:
    out = shell(
        [
            "zsh",
            "-f",
            "-c",
            "\n".join(
                [
                    f"source {script_file('zsh')}",
                    "[[ $_comps[pilothouse] == _pilothouse ]] || { print unregistered; exit 1 }",
                    'compadd() { [[ $1 == -- ]] && shift; print -r -- "$*" }',
                    "_files() { print -r -- '<files>' }",
                    't() { words=("$@"); CURRENT=$#words; _pilothouse }',
                    't pilothouse generate ""',
                    "t pilothouse generate deploy --",
                    't pilothouse validate --format ""',
                    't pilothouse serve --config ""',
                    't pilothouse completion ""',
                ]
            ),
        ]
    )
    assert out.splitlines() == [
        "context deploy monitoring",
        "-h --help -c --config --out --env --stack --force --dry-run --diff",
        "text json",
        "<files>",
        "bash zsh fish",
    ]


class Terminal:
    """An interactive zsh on a pseudo-terminal: what is typed goes in as keystrokes, what zsh
    draws comes back (escape sequences included)."""

    def __init__(self) -> None:
        self.fd, child = pty.openpty()
        bin_dir = str(Path(PILOTHOUSE[0]).parent)
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "TERM": "xterm", "HOME": tempfile.mkdtemp(), "PS1": "$ "}
        self.proc = subprocess.Popen(
            ["zsh", "-f", "-i"],
            stdin=child,
            stdout=child,
            stderr=child,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
        os.close(child)
        self.seen = ""

    def type(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while text not in plain(self.seen):  # zsh draws the suffix space in bold
            ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"{text!r} not shown in {timeout}s; the terminal showed {self.seen[-400:]!r}"
            self.seen += os.read(self.fd, 4096).decode(errors="replace")
        return self.seen

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        os.close(self.fd)


def test_zsh_completes_at_a_terminal() -> None:
    """compinit, the script sourced as a user's .zshrc would, then TAB pressed: zsh's own widget
    completes `jobs dr` to `drain` and `completion z` to `zsh`, each unique, on the line."""
    term = Terminal()
    try:
        term.type(f"autoload -Uz compinit && compinit -u && source {script_file('zsh')} && print lo''aded\n")
        term.wait_for("loaded")
        term.type("pilothouse jobs dr\t")
        term.wait_for("pilothouse jobs drain ")
        term.type("\x15pilothouse completion z\t")  # ^U: the line is emptied first
        term.wait_for("pilothouse completion zsh ")
    finally:
        term.close()


def fish_complete(line: str) -> list[str]:
    out = shell(["fish", "-c", f"source {script_file('fish')}; complete -C {shlex.quote(line)}"])
    return [entry.split("\t")[0] for entry in out.splitlines()]


def test_fish_completes_in_fish() -> None:
    assert fish_complete("pilothouse generate ") == ["context", "deploy", "monitoring"]
    assert fish_complete("pilothouse generate deploy --d") == ["--diff", "--dry-run"]
    assert fish_complete("pilothouse validate --format ") == ["json", "text"]
    assert fish_complete("pilothouse -h jobs dr") == ["drain"]
    assert "test_completion.py" in fish_complete("pilothouse serve --config test_com")


def test_an_unknown_shell_is_a_usage_error() -> None:
    result = subprocess.run([*PILOTHOUSE, "completion", "tcsh"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "invalid choice: 'tcsh'" in result.stderr
