"""User text in a report is text: no Markdown renderer (CommonMark as GitHub reads it, or
Python-Markdown as report.html is made) turns it into a heading, a link, an image or HTML."""

import re

import pytest
from markdown_it import MarkdownIt

from ablate.report._text import html_page, md_block, md_code, md_fence, md_text, safe_target
from ablate.report.latex import escape_latex

HOSTILE = [
    "a\n# injected\n[y](javascript:alert(2))",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "x | y\r\n| --- |",
    "![i](javascript:alert(3)) <javascript:alert(4)> [r]: javascript:alert(5)",
    "*bold* _em_ `code` ~~s~~ \\",
    "- item\u2028## also",
    "1. one",
    "&lt;script&gt;",
]
# CommonMark with raw HTML on, as a careless viewer renders report.md
COMMONMARK = MarkdownIt("commonmark")


def _tags(html: str) -> list[str]:
    return re.findall(r"<\s*([a-zA-Z0-9]+)", html)


@pytest.mark.parametrize("text", HOSTILE)
def test_one_line_text_renders_as_one_paragraph_of_text(text: str) -> None:
    for rendered in (COMMONMARK.render(md_text(text)), html_page("t", md_text(text), "")):
        body = rendered.split("<body>")[-1]
        assert set(_tags(body)) <= {"p", "body", "html"}, body  # no a, img, h1, li, table
    assert "\n" not in md_text(text) and "](" not in md_text(text)


def test_one_line_text_reads_as_written() -> None:
    assert md_text("aux.weight=0.4,aux.schedule=linear") == "aux.weight=0.4,aux.schedule=linear"
    assert md_text("+aux+lovasz") == "+aux+lovasz" and md_text("-0.5") == "-0.5"
    rendered = COMMONMARK.render(md_text("a <b> & [c] *d* #1 x_y\ny"))
    assert rendered == "<p>a &lt;b&gt; &amp; [c] *d* #1 x_y y</p>\n"


def test_a_code_span_holds_plain_names_and_gives_way_to_text_for_markup() -> None:
    assert md_code("aux.weight=0") == "`aux.weight=0`"
    assert md_code("a\nb") == "`a b`"
    assert md_code("<script>") == "&lt;script&gt;"
    assert md_code("[y](javascript:x)") == md_text("[y](javascript:x)")


def test_a_description_keeps_its_lines_and_its_http_links_only() -> None:
    text = (
        "PSPNet (`pspnet_tiny`), see [the paper](https://arxiv.org/abs/1612.01105).\n"
        "`<script>alert(1)</script>` `[c](javascript:alert(1))`\n"
        "[x](javascript:alert(1)) ![img](https://e.org/p.png) <script>alert(1)</script>\n"
        "# not a heading\n"
        "---\n"
        "    <b>not code</b>\n"
        "\n"
        "1. not a list"
    )
    md = md_block(text)
    assert md.count("\n") == text.count("\n")
    assert "[the paper](https://arxiv.org/abs/1612.01105)" in md and "`pspnet_tiny`" in md
    assert "](javascript:" not in md and "<script" not in md and "<b>" not in md
    for rendered in (COMMONMARK.render(md), html_page("t", md, "")):
        hrefs = re.findall(r"(?:href|src)=\"([^\"]*)\"", rendered)
        # the image is a plain link: a description shows no picture from elsewhere
        assert hrefs == ["https://arxiv.org/abs/1612.01105", "https://e.org/p.png"], rendered
        assert set(_tags(rendered.split("<body>")[-1])) <= {"p", "a", "code", "body", "html"}
        assert rendered.count("<code>") == 1, rendered


def test_a_fence_no_line_of_the_recipe_can_close() -> None:
    lines = md_fence("a: 1\nb: '```\n# x'\n", "yaml")
    assert lines[0] == "````yaml" and lines[-1] == "````"
    rendered = COMMONMARK.render("\n".join(lines))
    assert _tags(rendered) == ["pre", "code"] and "# x" in rendered


@pytest.mark.parametrize(
    ("target", "kept"),
    [
        ("plots/diff_vs_baseline.png", True),
        ("https://arxiv.org/abs/1612.01105", True),
        ("HTTP://x.org", True),
        ("javascript:alert(1)", False),
        ("JavaScript:alert(1)", False),
        (" java\tscript:alert(1)", False),
        ("&#106;avascript:alert(1)", False),
        ("data:text/html,<script>alert(1)</script>", False),
        ("vbscript:x", False),
    ],
)
def test_only_http_and_relative_targets_are_safe(target: str, kept: bool) -> None:
    assert safe_target(target) is kept


def test_the_page_drops_raw_html_and_unsafe_targets_the_markdown_might_still_hold() -> None:
    page = html_page(
        "<t>",
        "<script>alert(1)</script>\n\n[a](&#106;avascript:alert(1)) ![p](plots/x.png) "
        "<img src=x onerror=alert(1)>",
        "body{}",
    )
    assert "<script" not in page and "<img src=x" not in page and 'avascript:alert(1)"' not in page
    assert '<img alt="p" src="plots/x.png" />' in page and "<title>&lt;t&gt;</title>" in page
    assert "<a>a</a>" in page  # the link text stays, its target does not


def test_latex_text_is_one_line_and_a_bracket_cannot_open_an_argument() -> None:
    assert escape_latex("a\n\n# b") == r"a  \# b"
    assert escape_latex("[x]") == "{[}x{]}"
