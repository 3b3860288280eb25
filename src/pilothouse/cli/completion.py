"""`pilothouse completion bash|zsh|fish`: a shell completion script generated from the parser.

Every command, subcommand, option and choice comes from the argparse parser (`_tree.py`), so the
script follows the CLI as it changes; nothing is listed by hand. The script is static (it does
not run `pilothouse` on each TAB, which would pay the interpreter's start-up every time):
commands and options complete by name, an option's value completes from its choices or else as a
file name, and a positional argument likewise.

    bash:  source <(pilothouse completion bash)        # e.g. in ~/.bashrc
    zsh:   source <(pilothouse completion zsh)         # in ~/.zshrc, after compinit
    fish:  pilothouse completion fish > ~/.config/fish/completions/pilothouse.fish
"""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING, Any

from pilothouse.cli._common import command

if TYPE_CHECKING:
    from pilothouse.cli._tree import Command

SHELLS = ("bash", "zsh", "fish")
_WORD = re.compile(r"^[A-Za-z0-9_.:,=/+-]+$")


def register(sub: Any) -> None:
    parser = command(
        sub,
        "completion",
        "print a shell completion script (bash, zsh or fish)",
        "source <(pilothouse completion bash)   # fish: pilothouse completion fish | source",
    )
    parser.add_argument("shell", choices=SHELLS, help="the shell the script is for")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pilothouse.cli._tree import pilothouse  # dataclasses: only when a script is printed

    print(script(pilothouse(), args.shell), end="")
    return 0


def script(root: Command, shell: str) -> str:
    tables = _tables(root)
    if shell == "fish":
        return _fish(tables)
    return _bash(tables) if shell == "bash" else _zsh(tables)


Tables = dict[str, dict[str, list[str]]]


def _tables(root: Command) -> Tables:
    """Per command path (space-separated, "" for the top): its subcommands, its options, the
    options that take a value; per "path|option" (or "path|" for its positional argument) the
    choices."""
    subs: dict[str, list[str]] = {}
    opts: dict[str, list[str]] = {}
    takes: dict[str, list[str]] = {}
    choices: dict[str, list[str]] = {}
    for cmd in root.walk():
        key = " ".join(cmd.path)
        subs[key] = [sub.path[-1] for sub in cmd.subcommands]
        opts[key] = [flag for option in cmd.options for flag in option.flags]
        takes[key] = [flag for option in cmd.options if option.takes_value for flag in option.flags]
        for option in cmd.options:
            for flag in option.flags:
                if option.choices:
                    choices[f"{key}|{flag}"] = list(option.choices)
        positional = next((p for p in cmd.positionals if p.choices), None)
        if positional is not None:
            choices[f"{key}|"] = list(positional.choices)
    tables = {"subs": subs, "opts": opts, "takes": takes, "choices": choices}
    for table in tables.values():
        for key, words in table.items():
            for word in (*key.replace("|", " ").split(), *words):
                if not _WORD.match(word):
                    raise ValueError(f"cannot complete {word!r}: not a plain word")
    return tables


def _case(name: str, table: dict[str, list[str]], *, missing_fails: bool = False) -> str:
    """A POSIX-shell function setting REPLY to the words of `$1` (bash and zsh alike)."""
    arms = "".join(
        f'        "{key}") REPLY="{" ".join(words)}" ;;\n' for key, words in sorted(table.items()) if words
    )
    fallback = 'REPLY=""; return 1' if missing_fails else 'REPLY=""'
    return f'_pilothouse_{name}() {{\n    case "$1" in\n{arms}        *) {fallback} ;;\n    esac\n}}\n'


def _helpers(tables: Tables) -> str:
    return "".join(_case(name, tables[name], missing_fails=name == "choices") for name in tables)


_BASH = r"""
_pilothouse() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" cmd="" word i REPLY
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${COMP_WORDS[i]}"
        _pilothouse_takes "$cmd"
        if [[ " $REPLY " == *" $word "* ]]; then
            ((i++))
            continue
        fi
        _pilothouse_subs "$cmd"
        if [[ " $REPLY " == *" $word "* ]]; then
            cmd="${cmd:+$cmd }$word"
        fi
    done
    _pilothouse_takes "$cmd"
    if ((COMP_CWORD > 1)) && [[ " $REPLY " == *" $prev "* ]]; then
        if _pilothouse_choices "$cmd|$prev"; then
            mapfile -t COMPREPLY < <(compgen -W "$REPLY" -- "$cur")
        else
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        fi
        return 0
    fi
    if [[ "$cur" == -* ]]; then
        _pilothouse_opts "$cmd"
        mapfile -t COMPREPLY < <(compgen -W "$REPLY" -- "$cur")
        return 0
    fi
    _pilothouse_subs "$cmd"
    if [[ -n "$REPLY" ]] || _pilothouse_choices "$cmd|"; then
        mapfile -t COMPREPLY < <(compgen -W "$REPLY" -- "$cur")
    else
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
    fi
}
complete -o filenames -F _pilothouse pilothouse
"""

_ZSH = r"""
_pilothouse() {
    local cur="${words[CURRENT]}" prev="${words[CURRENT-1]}" cmd="" word REPLY
    local -i i
    for ((i = 2; i < CURRENT; i++)); do
        word="${words[i]}"
        _pilothouse_takes "$cmd"
        if [[ " $REPLY " == *" $word "* ]]; then
            ((i++))
            continue
        fi
        _pilothouse_subs "$cmd"
        if [[ " $REPLY " == *" $word "* ]]; then
            cmd="${cmd:+$cmd }$word"
        fi
    done
    _pilothouse_takes "$cmd"
    if ((CURRENT > 2)) && [[ " $REPLY " == *" $prev "* ]]; then
        if _pilothouse_choices "$cmd|$prev"; then
            compadd -- ${=REPLY}
        else
            _files
        fi
        return
    fi
    if [[ "$cur" == -* ]]; then
        _pilothouse_opts "$cmd"
        compadd -- ${=REPLY}
        return
    fi
    _pilothouse_subs "$cmd"
    if [[ -n "$REPLY" ]] || _pilothouse_choices "$cmd|"; then
        compadd -- ${=REPLY}
    else
        _files
    fi
}
if ! (( $+functions[compdef] )); then
    autoload -Uz compinit && compinit
fi
compdef _pilothouse pilothouse
"""

_FISH = r"""
function __pilothouse_cmd
    set -l tokens (commandline -opc)
    set -l cmd ''
    set -l skip 0
    for word in $tokens[2..-1]
        if test $skip = 1
            set skip 0
            continue
        end
        if contains -- $word (__pilothouse_takes $cmd)
            set skip 1
            continue
        end
        if contains -- $word (__pilothouse_subs $cmd)
            set cmd (string trim -- "$cmd $word")
        end
    end
    echo $cmd
end

function __pilothouse_complete
    set -l cmd (__pilothouse_cmd)
    set -l tokens (commandline -opc)
    set -l cur (commandline -ct)
    if test (count $tokens) -gt 1; and contains -- $tokens[-1] (__pilothouse_takes $cmd)
        set -l choices (__pilothouse_choices "$cmd|$tokens[-1]")
        if test (count $choices) -gt 0
            printf '%s\n' $choices
        else
            __fish_complete_path $cur
        end
        return
    end
    if string match -q -- '-*' $cur
        __pilothouse_opts $cmd
        return
    end
    set -l subs (__pilothouse_subs $cmd)
    if test (count $subs) -gt 0
        printf '%s\n' $subs
        return
    end
    set -l choices (__pilothouse_choices "$cmd|")
    if test (count $choices) -gt 0
        printf '%s\n' $choices
    else
        __fish_complete_path $cur
    end
end

complete -c pilothouse -e
complete -c pilothouse -f -a '(__pilothouse_complete)'
"""


def _header(shell: str) -> str:
    return f"# {shell} completion for pilothouse, from its parser: `pilothouse completion {shell}`\n"


def _bash(tables: Tables) -> str:
    return _header("bash") + _helpers(tables) + _BASH


def _zsh(tables: Tables) -> str:
    return "#compdef pilothouse\n" + _header("zsh") + _helpers(tables) + _ZSH


def _fish(tables: Tables) -> str:
    functions = []
    for name, table in tables.items():
        arms = "".join(
            f"        case '{key}'\n            printf '%s\\n' {' '.join(words)}\n"
            for key, words in sorted(table.items())
            if words
        )
        functions.append(f"function __pilothouse_{name}\n    switch $argv[1]\n{arms}    end\nend\n")
    return _header("fish") + "\n".join(functions) + _FISH
