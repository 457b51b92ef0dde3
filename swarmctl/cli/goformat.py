"""docker's `--format` for listings and inspect: `json`, `table`, `table TEMPLATE` and Go
templates, in the subset docker users write: `{{.Field}}`, `{{.A.B}}`, `{{json .}}`,
`{{upper .Name}}`, `{{.Name | lower}}`, `{{join .List ", "}}`, `\\t` and `\\n`.

Control actions (`if`, `range`, `with`…) are refused with one line, not half-rendered.
"""

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from swarmctl.cli.output import table
from swarmctl.errors import SwarmctlError

ACTION = re.compile(r"{{(-\s)?\s*(.*?)\s*(\s-)?}}", re.S)
TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|`[^`]*`|\||[^\s|]+')
FIELD = re.compile(r"^\.(?:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)?$")


def go_text(value: Any) -> str:
    """A value printed as Go's text/template prints it."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{go_text(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_text(v) for v in value) + "]"
    return str(value)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _join(items: Sequence[Any], sep: str) -> str:
    return sep.join(go_text(i) for i in items)


def _truncate(text: Any, length: int) -> str:
    return str(text)[: int(length)]


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": _json,
    "upper": lambda s: str(s).upper(),
    "lower": lambda s: str(s).lower(),
    "title": lambda s: re.sub(r"\b\w", lambda m: m.group().upper(), str(s)),
    "join": _join,
    "split": lambda s, sep: str(s).split(sep),
    "truncate": _truncate,
    "println": lambda *a: " ".join(go_text(x) for x in a) + "\n",
    "print": lambda *a: "".join(go_text(x) for x in a),
}


class Template:
    """A parsed Go template: literal text and actions, rendered against one dict."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.parts: list[str | list[list[str]]] = []  # literal, or a pipeline of commands
        position, trim_next = 0, False
        for match in ACTION.finditer(text):
            literal = text[position : match.start()]
            literal = literal.lstrip() if trim_next else literal
            self.parts.append(literal.rstrip() if match.group(1) else literal)  # "{{- "
            self.parts.append(self._pipeline(match.group(2)))
            position, trim_next = match.end(), bool(match.group(3))  # " -}}"
        rest = text[position:]
        if "{{" in rest or "}}" in rest:
            self._refuse("unbalanced {{ }}")
        self.parts.append(rest.lstrip() if trim_next else rest)

    def _refuse(self, why: str) -> NoReturn:
        raise SwarmctlError(f"--format {self.text!r}: {why}")

    def _pipeline(self, action: str) -> list[list[str]]:
        commands: list[list[str]] = [[]]
        for token in TOKEN.findall(action):
            if token == "|":
                commands.append([])
            else:
                commands[-1].append(token)
        for words in commands:
            if not words:
                self._refuse(f"empty command in {{{{{action}}}}}")
            head = words[0]
            if not FIELD.match(head) and head not in FUNCTIONS:
                self._refuse(
                    f"{head!r} is not supported (fields like .Name and the functions "
                    f"{', '.join(sorted(FUNCTIONS))} are)"
                )
        return commands

    def header(self, name: Callable[[str], str]) -> str:
        """The template with each action replaced by the header of the first field it
        names (`{{.DesiredState}}` -> name("DesiredState")), as docker's table headers."""
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            fields = [w for words in part for w in words if FIELD.match(w) and w != "."]
            out.append(name(fields[0][1:].split(".")[-1]) if fields else "")
        return "".join(out)

    def render(self, data: Mapping[str, Any]) -> str:
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value: Any = None
            for index, words in enumerate(part):
                args = [self._argument(w, data) for w in words[1:]]
                if index:
                    args.append(value)
                value = self._command(words[0], args, data)
            out.append(go_text(value))
        return "".join(out)

    def _argument(self, word: str, data: Mapping[str, Any]) -> Any:
        if FIELD.match(word):
            return self._field(word, data)
        if word[:1] == '"':
            try:
                return json.loads(word)  # Go's string escapes, as far as scripts use them
            except ValueError:
                self._refuse(f"cannot read the string {word}")
        if word[:1] == "`" and word[-1:] == "`" and len(word) > 1:
            return word[1:-1]
        if word.lstrip("-").isdigit():
            return int(word)
        self._refuse(f"{word!r} is not a field, string or number")

    def _command(self, head: str, args: list[Any], data: Mapping[str, Any]) -> Any:
        if head in FUNCTIONS:
            try:
                return FUNCTIONS[head](*args)
            except TypeError:
                self._refuse(f"wrong number of arguments to {head}")
        if args:
            self._refuse(f"{head} takes no arguments")
        return self._field(head, data)

    def _field(self, path: str, data: Mapping[str, Any]) -> Any:
        value: Any = data
        for name in path[1:].split(".") if path != "." else []:
            if not isinstance(value, Mapping) or name not in value:
                keys = ", ".join(value) if isinstance(value, Mapping) else "none"
                self._refuse(f"no field {name!r} here (fields: {keys})")
            value = value[name]
        return value


def _header(field: str, headers: Mapping[str, str]) -> str:
    # docker's headers are the field names in capitals, words split: DesiredState -> DESIRED STATE
    return headers.get(field) or re.sub(r"(?<=[a-z])(?=[A-Z])", " ", field).upper()


def _unescape(fmt: str) -> str:
    return fmt.replace("\\t", "\t").replace("\\n", "\n")


def _template(fmt: str, listing: bool = True) -> Template:
    # docker would print "yaml" once a row for `--format yaml`: surely a mistake, so say so.
    if "{{" not in fmt:
        kinds = "table, json, 'table TEMPLATE' or " if listing else ""
        raise SwarmctlError(f"--format {fmt!r}: use {kinds}a Go template like '{{{{.ID}}}}'")
    return Template(_unescape(fmt))


def render_rows(
    fmt: str,
    rows: Sequence[Mapping[str, Any]],
    default: Callable[[], None],
    headers: Mapping[str, str] | None = None,
) -> None:
    """Print listing rows as docker does for `--format FMT`: `table` (the default
    printer), `json` (one object per line), `table TEMPLATE` (headers and padded
    columns) or a template (one line per row)."""
    fmt = fmt.strip()
    if fmt in ("", "table"):
        default()
    elif fmt == "json":
        for row in rows:
            print(_json(dict(sorted(row.items()))))
    elif fmt.startswith("table "):
        template = _template(fmt[len("table ") :].strip())
        header = template.header(lambda field: _header(field, headers or {}))
        lines = [header, *(template.render(row) for row in rows)]
        table(*_columns(lines))
    else:
        template = _template(fmt)
        for row in rows:
            print(template.render(row))


def _columns(lines: list[str]) -> tuple[list[str], list[list[str]]]:
    """Tab-separated lines as a header and rows of equal length, for table()."""
    cells = [line.split("\t") for line in lines]
    width = max(len(c) for c in cells)
    padded = [c + [""] * (width - len(c)) for c in cells]
    return padded[0], padded[1:]


def render_documents(fmt: str | None, documents: Sequence[Any]) -> None:
    """`inspect`: the full documents as a JSON array, or each through a template."""
    from swarmctl.cli.output import as_json

    if not fmt:
        as_json(list(documents))
        return
    template = _template(fmt, listing=False)
    for document in documents:
        print(template.render(document if isinstance(document, Mapping) else {}))
