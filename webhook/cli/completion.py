"""`podgate completion bash|zsh|fish`: shell completion, written from the parser.

The scripts are generated from argparse's own description of the commands,
so a new option completes without anyone editing a script: subcommands,
their options, the values of options with choices (`-o json`), policy ids
after `--policy`, `--skip`, `explain` and `policies`, and file names
elsewhere. zsh uses the bash script through bashcompinit.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field

SHELLS = ("bash", "zsh", "fish")
# Options whose value is a policy id, and subcommands whose argument is one.
_ID_OPTIONS = frozenset({"--policy", "--skip"})
_ID_COMMANDS = frozenset({"explain", "policies"})


@dataclass
class Command:
    name: str
    options: list[str] = field(default_factory=list)
    choices: dict[str, list[str]] = field(default_factory=dict)  # option -> its values
    takes_values: list[str] = field(default_factory=list)  # options followed by a value
    positional: list[str] = field(default_factory=list)  # the values of a positional argument


@dataclass(frozen=True)
class Names:
    """What completes besides the parser's own words."""

    policies: list[str]  # after --policy and --skip
    entries: list[str]  # policies and mutations: after explain and policies
    settings: list[str]  # after --set: `require-probes.mode=` ...


def commands(parser: argparse.ArgumentParser) -> list[Command]:
    """Each subcommand with its options, read from the parser."""
    found: list[Command] = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for name, sub in action.choices.items():
            command = Command(name)
            for option in sub._actions:
                if not option.option_strings:
                    command.positional.extend(str(c) for c in option.choices or ())
                    continue
                command.options.extend(option.option_strings)
                if option.nargs != 0:
                    command.takes_values.extend(option.option_strings)
                if option.choices:
                    for flag in option.option_strings:
                        command.choices[flag] = [str(c) for c in option.choices]
            found.append(command)
    return found


def _words(values: Iterable[str]) -> str:
    return shlex.quote(" ".join(values))


def bash(parser: argparse.ArgumentParser, names: Names) -> str:
    ids = _words(names.policies)
    cases = []
    for command in commands(parser):
        values = [
            f"            {'|'.join(flags)}) COMPREPLY=($(compgen -W {_words(choices)} "
            '-- "$cur")); return ;;'
            for choices, flags in _group(command.choices).items()
        ]
        id_flags = [o for o in command.options if o in _ID_OPTIONS]
        if id_flags:
            values.append(
                f"            {'|'.join(id_flags)}) COMPREPLY=($(compgen -W {ids} "
                '-- "$cur")); return ;;'
            )
        if "--set" in command.options:
            values.append(
                f"            --set) compopt -o nospace 2>/dev/null; COMPREPLY=($(compgen -W "
                f'{_words(names.settings)} -- "$cur")); return ;;'
            )
        free = [
            o
            for o in command.takes_values
            if o not in command.choices and o not in id_flags and o != "--set"
        ]
        if free:
            values.append(
                f'            {"|".join(free)}) COMPREPLY=($(compgen -f -- "$cur")); return ;;'
            )
        positional = 'COMPREPLY=($(compgen -f -- "$cur"))'
        if command.name in _ID_COMMANDS or command.positional:
            words = names.entries if command.name in _ID_COMMANDS else command.positional
            positional = f'COMPREPLY=($(compgen -W {_words(words)} -- "$cur"))'
        cases.append(
            f"        {command.name})\n"
            '            case "$prev" in\n'
            + "".join(f"{line}\n" for line in values)
            + "            esac\n"
            + '            if [[ "$cur" == -* ]]; then\n'
            + f'                COMPREPLY=($(compgen -W {_words(command.options)} -- "$cur"))\n'
            + f"            else\n                {positional}\n            fi\n"
            + "            ;;\n"
        )
    top = _words([*(c.name for c in commands(parser)), "--version", "--help"])
    return (
        "# podgate completion for bash: source it, or put it in bash-completion's folder\n"
        "_podgate() {\n"
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"\n'
        '    local command="" word\n'
        '    for word in "${COMP_WORDS[@]:1:COMP_CWORD-1}"; do\n'
        '        [[ "$word" != -* ]] && { command="$word"; break; }\n'
        "    done\n"
        '    case "$command" in\n'
        f'        "") COMPREPLY=($(compgen -W {top} -- "$cur")) ;;\n'
        + "".join(cases)
        + "    esac\n"
        "}\n"
        "complete -o default -F _podgate podgate\n"
    )


def _group(choices: dict[str, list[str]]) -> dict[tuple[str, ...], list[str]]:
    """Options sharing the same values (`-o` and `--output`), grouped."""
    grouped: dict[tuple[str, ...], list[str]] = {}
    for flag, values in choices.items():
        grouped.setdefault(tuple(values), []).append(flag)
    return grouped


def zsh(parser: argparse.ArgumentParser, names: Names) -> str:
    return (
        "#compdef podgate\n"
        "# podgate completion for zsh, through bash's: source it from .zshrc\n"
        "autoload -U +X bashcompinit && bashcompinit\n" + bash(parser, names)
    )


def fish(parser: argparse.ArgumentParser, names: Names) -> str:
    ids = " ".join(names.policies)
    found = commands(parser)
    lines = [
        "# podgate completion for fish: save it as ~/.config/fish/completions/podgate.fish",
        "complete -c podgate -f",
        f"complete -c podgate -n __fish_use_subcommand -a {_words(c.name for c in found)}",
    ]
    for command in found:
        when = f"-n '__fish_seen_subcommand_from {command.name}'"
        if command.name in _ID_COMMANDS:
            lines.append(f"complete -c podgate {when} -a {_words(names.entries)}")
        elif command.positional:
            lines.append(f"complete -c podgate {when} -a {_words(command.positional)}")
        else:
            lines.append(f"complete -c podgate {when} -F")
        for option in command.options:
            if not option.startswith("--"):
                continue
            spec = f"-l {option[2:]}"
            if option in command.choices:
                spec += f" -x -a {_words(command.choices[option])}"
            elif option in _ID_OPTIONS:
                spec += f" -x -a {shlex.quote(ids)}"
            elif option == "--set":
                spec += f" -x -a {_words(names.settings)}"
            elif option in command.takes_values:
                spec += " -r -F"
            lines.append(f"complete -c podgate {when} {spec}")
    return "\n".join(lines) + "\n"


def script(shell: str, parser: argparse.ArgumentParser, names: Names) -> str:
    return {"bash": bash, "zsh": zsh, "fish": fish}[shell](parser, names)
