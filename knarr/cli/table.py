"""Docker's --format handling: `table` templates, headers, and a Go tabwriter."""

from knarr.cli.template import Template

__all__ = ["tabwrite", "Formatter"]


def tabwrite(lines: list[str], minwidth: int = 10, padding: int = 3) -> str:
    """Align tab-separated cells as Go's tabwriter.NewWriter(w, 10, 1, 3, ' ', 0) does.

    A cell is text ended by a tab; text after a line's last tab is not aligned.
    """
    rows = [line.split("\t") for line in lines]
    widths: dict[int, int] = {}
    for cells in rows:
        for col, cell in enumerate(cells[:-1]):
            widths[col] = max(widths.get(col, 0), len(cell))
    out = []
    for cells in rows:
        parts = []
        for col, cell in enumerate(cells[:-1]):
            width = max(widths[col] + padding, minwidth)
            parts.append(cell.ljust(width))
        parts.append(cells[-1])
        out.append("".join(parts))
    return "\n".join(out) + "\n" if out else ""


class _Header:
    """Rendering a table's header: every field is its column title."""

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._headers.get(name, name.upper())

    def get(self, name: str, default=None):
        return self.__getattr__(name)


class Formatter:
    """Renders rows through a Docker --format string (`table ...`, a template, or `json`)."""

    def __init__(self, fmt: str, headers: dict[str, str]) -> None:
        self.table = fmt.startswith("table")
        if self.table:
            fmt = fmt[len("table"):]
        fmt = fmt.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
        if fmt == "json":
            fmt = "{{json .}}"
        self.template = Template(fmt)
        self.headers = headers

    def render(self, rows: list) -> str:
        """All rows, each followed by a newline; aligned under a header for `table`."""
        lines = [self.template.render(row) for row in rows]
        if not self.table:
            return "".join(line + "\n" for line in lines)
        header = self.template.render(_Header(self.headers))
        text = "\n".join([header, *lines])
        return tabwrite(text.split("\n"))
