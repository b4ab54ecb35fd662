"""User text in a report — the description, cell, variant and class names, swept values,
error strings, paths, the command line, the recipe — as text that no renderer reads as markup.

Markdown: whatever could start markup is escaped (HTML as entities, the rest with a
backslash), and line breaks in a one-line field (a table cell, a heading, a list item) become
spaces, so a name cannot open a heading, a link or a table row. A description keeps its lines
and its Markdown links to http(s) addresses, nothing else. The HTML page is rendered from that
Markdown with raw HTML switched off, and any link or image whose target is not http(s) or a
relative path loses it: a second line of defence, not the first.
"""

from __future__ import annotations

import html
import re
from xml.etree.ElementTree import Element

import markdown
from markdown.treeprocessors import Treeprocessor
from markdown.util import AMP_SUBSTITUTE

# control characters and line separators: in a one-line field each becomes a space (the
# STX/ETX placeholders Python-Markdown uses internally are among them)
_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# markup characters, escaped with a backslash (both CommonMark and Python-Markdown take these
# escapes). An underscore inside a word ("no_aux") cannot open emphasis and is left readable.
_MARKUP = re.compile(r"[&<>\\`*\[\]|#]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
# what would open a list item at the start of a line: "- ", "+ ", "1. ", "2) "
_LIST_MARKER = re.compile(r"^(\s*)([-+]|\d{1,9}[.)])(?=\s|$)")
# a whole line of "=" or "-" would turn the line above into a heading (setext)
_UNDERLINE = re.compile(r"^(\s*)([=-])(?=[=\s-]*$)")
# what a description keeps: a Markdown link to an http(s) address (no nesting, no title),
# and a code span (kept where its content is inert everywhere, see md_code)
_KEPT = re.compile(
    r"\[(?P<label>[^\[\]\n]*)\]\((?P<url>https?://[^\s()<>\"'`\\]+)\)|`(?P<code>[^`]+)`",
    re.IGNORECASE,
)
# inside a code span nothing is escaped: text with these is written as escaped text instead
_NOT_IN_CODE = re.compile(r"[&<>|\[\]`\\]")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_SAFE_SCHEME = re.compile(r"https?:", re.IGNORECASE)


def one_line(value: object) -> str:
    """`value` as text on one line: each line break or other control character a space."""
    return _BREAKS.sub(" ", str(value))


def md_text(value: object) -> str:
    """`value` as one line of Markdown text, read as written by GitHub and by report.html."""
    return _escape_line(one_line(value))


def md_code(value: object) -> str:
    """`value` as an inline code span on one line; as escaped text (`md_text`) when it holds
    a character that is markup elsewhere (`<`, `&`, `[`, `|`, a backtick, ...): in a code span
    nothing can be escaped, and not every reader of report.md treats a code span as inert."""
    text = one_line(value)
    if not text.strip() or _NOT_IN_CODE.search(text):
        return md_text(text)
    return f"`{text}`"


def md_block(text: str) -> str:
    """Several lines of user text (a description) as Markdown: its lines and paragraphs kept,
    each escaped as `md_text` does, except a link to an http(s) address and a code span that
    `md_code` would write as one (`dsnet`), which stay what they are."""
    lines = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = one_line(line).lstrip()  # indentation would make a code block
        parts: list[str] = []
        end = 0
        for kept in _KEPT.finditer(line):
            if kept["code"] is not None and _NOT_IN_CODE.search(kept["code"]):
                continue  # escaped with the text around it
            before = _escape_line(line[end : kept.start()], first=not parts)
            if kept["code"] is not None:
                parts += [before, kept.group()]
            else:
                if before.endswith("!"):  # "![...](...)" would be an image
                    before = before[:-1] + "\\!"
                parts += [before, f"[{_escape_line(kept['label'], first=False)}]({kept['url']})"]
            end = kept.end()
        parts.append(_escape_line(line[end:], first=not parts))
        lines.append("".join(parts))
    return "\n".join(lines)


def md_fence(text: str, info: str = "") -> list[str]:
    """`text` as a fenced code block whose fence no line of it can close."""
    ticks = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * max(3, ticks + 1)
    return [f"{fence}{info}", *text.rstrip("\n").split("\n"), fence]


def _escape_line(line: str, *, first: bool = True) -> str:
    """One line (or, with `first=False`, the middle of one) with its markup escaped."""
    out = _MARKUP.sub(lambda m: _ENTITIES.get(m.group(), "\\" + m.group()), line)
    out = out.replace("\\](", "\\]\\(")  # not even the look of a link: "](javascript:"
    if first:
        out = _UNDERLINE.sub(lambda m: m[1] + ("&#61;" if m[2] == "=" else "\\-"), out)
        out = _LIST_MARKER.sub(lambda m: m[1] + m[2][:-1] + "\\" + m[2][-1], out)
    return out


# --------------------------------------------------------------------------- HTML


def html_page(title: str, markdown_text: str, style: str) -> str:
    """A report's Markdown as a standalone HTML page. Raw HTML in the Markdown stays text, and
    only http(s) and relative link and image targets are kept."""
    converter = markdown.Markdown(extensions=["tables"])
    converter.preprocessors.deregister("html_block")
    converter.inlinePatterns.deregister("html")
    # after "unescape" (priority 0), so the targets checked are the ones written out
    converter.treeprocessors.register(_SafeTargets(converter), "safe_targets", -10)
    body = converter.convert(markdown_text)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{body}</body></html>\n"
    )


def safe_target(target: str) -> bool:
    """Whether a link or image target is one a report may carry: an http(s) address or a
    path relative to the page. Judged as a browser reads it: entities decoded, control
    characters and spaces (which browsers drop from a scheme) removed."""
    seen = html.unescape(target.replace(AMP_SUBSTITUTE, "&"))
    seen = re.sub(r"[\x00-\x20\x7f]+", "", seen)
    return not _SCHEME.match(seen) or bool(_SAFE_SCHEME.match(seen))


class _SafeTargets(Treeprocessor):
    """Drops every `href` and `src` that `safe_target` refuses (the link text stays)."""

    def run(self, root: Element) -> None:
        for element in root.iter():
            for name in ("href", "src"):
                target = element.get(name)
                if target is not None and not safe_target(target):
                    del element.attrib[name]
