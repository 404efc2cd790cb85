"""Pages that open without a network: the report's HTML and the `dvc plots show` page load
nothing from outside their file.

- The report: nbconvert's `lab` template loads require.js and MathJax from a CDN, and mermaid
  on demand; `OFFLINE_TEMPLATE` is that template without them (the report has no widgets, math
  or diagrams; its figures are embedded PNGs).
- `dvc plots show` / `dvc plots diff`: DVC's page loads Vega, Vega-Lite and Vega-Embed from a
  CDN. `.dvc/config` points DVC at `reports/dvc_plots.html` (`plots.html_template`), a page
  with the three bundled inline (by vl-convert-python, from the packages' npm releases) and
  without DVC's `{scripts}` placeholder, so DVC adds no script of its own. `python -m
  fourds.report.offline` writes it, once per clone (the bundle is other projects' code: it is
  generated, never committed), outside every stage's outputs, so that writing it never changes
  what a stage made.

`external_loads` finds what a page would fetch from elsewhere; the tests and the report stage
check that it finds nothing.
"""

from __future__ import annotations

import argparse
import re
from html.parser import HTMLParser
from pathlib import Path

from fourds.atomic import atomic_path

PLOTS_TEMPLATE = Path("reports") / "dvc_plots.html"  # from the repository root
VEGA_LITE = "5.21"  # DVC's vega-lite templates are v5 specs

# The attributes by which an element loads something (a link's href only for <link>: an <a>
# is followed when clicked, not fetched when the page opens).
_LOADING = {
    "script": "src",
    "link": "href",
    "img": "src",
    "iframe": "src",
    "embed": "src",
    "source": "src",
    "audio": "src",
    "video": "src",
    "track": "src",
    "input": "src",
    "object": "data",
}
_EXTERNAL = r"""(?:https?:)?//[^\s"'()<>]+"""
_CSS_LOADS = re.compile(
    rf"""@import\s+(?:url\()?\s*["']?({_EXTERNAL})|url\(\s*["']?({_EXTERNAL})"""
)
_JS_LOADS = re.compile(
    rf"""\bimport\s*\(\s*["'`]({_EXTERNAL})|\bfrom\s*["']({_EXTERNAL})|\bimport\s*["']({_EXTERNAL})"""
    rf"""|\bimportScripts\s*\(\s*["']({_EXTERNAL})"""
    # a script or stylesheet named by a string, to be loaded through a variable
    r"""|["'`]((?:https?:)?//[^\s"'`]+?\.(?:m?js|css)(?:\?[^\s"'`]*)?)["'`]"""
)

OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{#- nbconvert's lab page without what it loads from a CDN (fourds.report.offline) -#}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""

_PLOTS_PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <!-- The `dvc plots show` page of fourds (.dvc/config: plots.html_template), written by
         the report stage or `python -m fourds.report.offline`: Vega, Vega-Lite {vega_lite}
         and Vega-Embed (BSD-3-Clause, University of Washington Interactive Data Lab and the Vega
         contributors) bundled inline by vl-convert-python {vl_convert}, so that the page
         opens without a network. -->
    <script>
(() => {
{bundle}
})();
    </script>
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


class _Loads(HTMLParser):
    """Collects the external URLs an HTML page loads (`external_loads`)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._inside: str | None = None  # "script" or "style" while in one

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        source = values.get(_LOADING.get(tag, ""))
        if source and re.fullmatch(_EXTERNAL, source.strip()):
            self.found.append(source.strip())
        if values.get("style"):
            self._scan(_CSS_LOADS, values["style"])
        if tag in ("script", "style"):
            self._inside = tag

    def handle_endtag(self, tag: str) -> None:
        if tag == self._inside:
            self._inside = None

    def handle_data(self, data: str) -> None:
        if self._inside == "style":
            self._scan(_CSS_LOADS, data)
        elif self._inside == "script":
            self._scan(_JS_LOADS, data)

    def _scan(self, pattern: re.Pattern, text: str) -> None:
        self.found += [next(url for url in match if url) for match in pattern.findall(text)]


def external_loads(html: str) -> list[str]:
    """Every URL outside the page that opening `html` in a browser would fetch: the sources of
    scripts, stylesheets, images and frames, CSS imports and url()s, and scripts' module
    imports and the scripts or stylesheets they name in strings, when absolute (http, https or
    protocol-relative). URLs the page only names (links, XML namespaces, JSON schema ids) are
    not loads."""
    parser = _Loads()
    parser.feed(html)
    parser.close()
    return parser.found


def plots_template() -> str:
    """The `dvc plots show` page template: DVC's page with Vega, Vega-Lite and Vega-Embed
    inline (vl-convert-python's bundle, in a function of its own so that its top-level names
    stay out of the page's scripts; it sets window.vegaEmbed, which DVC's plots call) and no
    `{scripts}` placeholder.

    Raises:
        ImportError: vl-convert-python is not installed (`pip install vl-convert-python`).
        ValueError: the bundle would break the page (it holds `</script` or one of DVC's
            placeholders, which DVC would fill in).
    """
    import vl_convert

    bundle = vl_convert.javascript_bundle(vl_version=VEGA_LITE)
    if re.search(r"</script|\{(scripts|plot_divs|refresh_tag)\}", bundle, re.IGNORECASE):
        raise ValueError("the vega bundle holds a closing script tag or a DVC placeholder")
    page = _PLOTS_PAGE.replace("{vega_lite}", VEGA_LITE)
    return page.replace("{vl_convert}", vl_convert.__version__).replace("{bundle}", bundle)


def write_plots_template(path: Path) -> None:
    """Write `plots_template()` to `path` (atomically, its folder made)."""
    with atomic_path(path) as temporary:
        temporary.write_text(plots_template(), encoding="utf8")


def main(argv: list[str] | None = None) -> None:
    """Write the `dvc plots show` page template (default: reports/dvc_plots.html)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out", nargs="?", type=Path, default=PLOTS_TEMPLATE)
    args = parser.parse_args(argv)
    write_plots_template(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
