"""Docker's word processing: quotes, escapes and variable substitution.

`process_word` turns one word of a Dockerfile instruction into its value as
Docker's shell lexer does: single quotes keep everything literal, double
quotes allow `$` expansion and escapes of `"`, `$` and the escape character,
and `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`,
`${VAR+word}`, `${VAR:?msg}`, `${VAR?msg}` substitute from `env`. An unset
variable is empty. `split_words` cuts a line at unquoted blanks first.
Pure functions, no I/O.
"""

from knarr.errors import InvalidArgument

__all__ = ["process_word", "process_words", "split_words"]


class _Lexer:
    def __init__(self, text: str, env: dict[str, str], escape: str) -> None:
        self.text, self.env, self.escape = text, env, escape
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1 if ch else 0
        return ch

    def word(self, stop: str = "") -> str:
        """Read up to an unquoted character in `stop` (or the end); expand as it goes."""
        out = []
        while (ch := self.peek()) and ch not in stop:
            self.pos += 1
            if ch == self.escape:
                nxt = self.next()
                out.append(nxt if nxt else ch)
            elif ch == "'":
                out.append(self._single())
            elif ch == '"':
                out.append(self._double())
            elif ch == "$":
                out.append(self._variable())
            else:
                out.append(ch)
        return "".join(out)

    def _single(self) -> str:
        end = self.text.find("'", self.pos)
        if end < 0:
            raise InvalidArgument("unexpected end of statement while looking for matching "
                                  "single-quote", text=self.text)
        out, self.pos = self.text[self.pos:end], end + 1
        return out

    def _double(self) -> str:
        out = []
        while True:
            ch = self.next()
            if not ch:
                raise InvalidArgument("unexpected end of statement while looking for matching "
                                      "double-quote", text=self.text)
            if ch == '"':
                return "".join(out)
            if ch == self.escape and self.peek() in ('"', "$", self.escape):
                out.append(self.next())
            elif ch == "$":
                out.append(self._variable())
            else:
                out.append(ch)

    def _name(self) -> str:
        start = self.pos
        while (ch := self.peek()) and (ch.isalnum() or ch == "_"):
            self.pos += 1
        return self.text[start:self.pos]

    def _variable(self) -> str:
        ch = self.peek()
        if ch == "{":
            self.pos += 1
            return self._braced()
        name = self._name()
        if not name:
            return "$"
        return self.env.get(name, "")

    def _braced(self) -> str:
        name = self._name()
        if not name:
            raise InvalidArgument(f"missing ':' in substitution: {self.text}", text=self.text)
        ch = self.next()
        if ch == "}":
            return self.env.get(name, "")
        colon = ch == ":"
        if colon:
            ch = self.next()
        if ch not in ("-", "+", "?"):
            raise InvalidArgument(f"unsupported modifier ({ch}) in substitution: {self.text}",
                                  text=self.text)
        word = self.word(stop="}")
        if self.next() != "}":
            raise InvalidArgument(f"missing '}}' in substitution: {self.text}", text=self.text)
        value = self.env.get(name)
        present = value is not None and (value != "" or not colon)
        if ch == "-":
            return value if present else word  # type: ignore[return-value]
        if ch == "+":
            return word if present else ""
        if not present:
            raise InvalidArgument(f"{name}: {word or 'is not allowed to be unset'}", name=name)
        return value  # type: ignore[return-value]


def process_word(word: str, env: dict[str, str], escape: str = "\\") -> str:
    """One word with quotes removed and variables substituted."""
    return _Lexer(word, env, escape).word()


def split_words(text: str, escape: str = "\\") -> list[str]:
    """Cut at blanks outside quotes; quotes and escapes are kept for `process_word`."""
    words, current, quote, pos = [], [], "", 0
    while pos < len(text):
        ch = text[pos]
        if ch == escape and pos + 1 < len(text) and quote != "'":
            current.append(text[pos:pos + 2])
            pos += 2
            continue
        if quote:
            quote = "" if ch == quote else quote
        elif ch in ("'", '"'):
            quote = ch
        elif ch.isspace():
            if current:
                words.append("".join(current))
                current = []
            pos += 1
            continue
        current.append(ch)
        pos += 1
    if current:
        words.append("".join(current))
    return words


def process_words(text: str, env: dict[str, str], escape: str = "\\") -> list[str]:
    """Split a line into words, then process each; words that expand to nothing are dropped
    unless they were quoted."""
    out = []
    for word in split_words(text, escape):
        value = process_word(word, env, escape)
        if value or any(q in word for q in "'\""):
            out.append(value)
    return out
