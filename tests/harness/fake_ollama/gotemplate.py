"""Is this a Go ``text/template`` that Ollama's ``template.Parse`` accepts? (stdlib only)

Ollama parses a model's template with ``template.New("").Option("missingkey=zero")
.Funcs(funcs).Parse(s)`` (template/template.go ``Parse``; v0.6.8 funcs: ``json``; v0.32.15
adds ``currentDate``, ``yesterdayDate``, ``toTypeScriptType``) and ``/api/create`` turns a
failure into 400 ``template error: <Go's message>`` (server/create.go ``setTemplate``,
``errBadTemplate``). This checker covers the errors a hand-written template makes, with the
messages of Go's ``text/template/parse`` (``template: :LINE: MSG``): an action left open
(``unclosed action``), a block without ``{{end}}`` (``unexpected EOF``), an ``{{end}}`` or
``{{else}}`` with no block (``unexpected {{end}}``), an unknown function (``function "x" not
defined``) and an unterminated string. Anything else Go would refuse passes here.
"""

from __future__ import annotations

import re

BUILTINS = {
    "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf",
    "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne",
}  # fmt: skip
OLLAMA_FUNCS_0_6 = {"json"}
OLLAMA_FUNCS_0_32 = {"json", "currentDate", "yesterdayDate", "toTypeScriptType"}
_BLOCKS = {"if", "range", "with", "define", "block"}
_LITERALS = {"true", "false", "nil"}
_KEYWORDS = _BLOCKS | {"else", "end", "template", "break", "continue"}
_TOKEN = re.compile(
    r'\s+|"(?:\\.|[^"\\])*"|`[^`]*`|\'(?:\\.|[^\'\\])*\'|:=|=|\||\(|\)|,|'
    r"\$[A-Za-z0-9_]*|(?:\.[A-Za-z0-9_]*)+|[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*|[-+0-9][0-9a-fA-FxX._+-]*|."
)


class TemplateError(ValueError):
    pass


def _fail(line: int, message: str) -> TemplateError:
    return TemplateError(f"template: :{line}: {message}")


def check(text: str, funcs: set[str]) -> None:
    """Raise TemplateError with Go's message when ``text`` does not parse."""
    known = BUILTINS | funcs
    stack: list[str] = []
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            break
        line = text.count("\n", 0, start) + 1
        inner_start = start + 2
        if text.startswith("- ", inner_start) or text.startswith("-\t", inner_start):
            inner_start += 1
        stripped = text[inner_start:].lstrip()
        if stripped.startswith("/*"):
            close = text.find("*/", inner_start)
            if close < 0:
                raise _fail(line, "unclosed comment")
            end = text.find("}}", close + 2)
            if end < 0 or text[close + 2 : end].strip() not in ("", "-"):
                raise _fail(line, "comment ends before closing delimiter")
            pos = end + 2
            continue
        end = _action_end(text, inner_start, line)
        body = text[inner_start:end]
        if body.endswith(" -") or body.endswith("\t-"):
            body = body[:-1]
        _check_action(body, line, known, stack)
        pos = end + 2
    if stack:
        raise _fail(text.count("\n") + 1, "unexpected EOF")


def _action_end(text: str, start: int, line: int) -> int:
    """Index of the ``}}`` closing the action that starts at ``start``, skipping strings."""
    i = start
    while i < len(text):
        if text.startswith("}}", i):
            return i
        ch = text[i]
        if ch in "\"'":
            j = i + 1
            while j < len(text) and text[j] != ch:
                if text[j] == "\\":
                    j += 1
                if j < len(text) and text[j] == "\n":
                    raise _fail(line, "unterminated quoted string")
                j += 1
            if j >= len(text):
                raise _fail(line, "unterminated quoted string")
            i = j + 1
            continue
        if ch == "`":
            j = text.find("`", i + 1)
            if j < 0:
                raise _fail(line, "unterminated raw quoted string")
            i = j + 1
            continue
        i += 1
    raise _fail(line, "unclosed action")


def _check_action(body: str, line: int, known: set[str], stack: list[str]) -> None:
    words = [t for t in _TOKEN.findall(body) if t.strip()]
    if not words:
        raise _fail(line, "missing value for command")
    head = words[0]
    if head in _BLOCKS:
        if head in ("if", "with", "range") and len(words) == 1:
            raise _fail(line, f"missing value for {head}")
        stack.append(head)
    elif head == "end":
        if not stack:
            raise _fail(line, "unexpected {{end}}")
        stack.pop()
    elif head == "else" and (not stack or stack[-1] not in ("if", "with", "range")):
        raise _fail(line, "unexpected {{else}}")
    args = words[1:] if head in _KEYWORDS else words
    for word in args:
        bare = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", word) is not None
        if bare and word not in _LITERALS | _KEYWORDS | known:
            raise _fail(line, f'function "{word}" not defined')
