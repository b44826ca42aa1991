"""The standard library's feedparser, less three costs it pays on every multipart email.

`email.feedparser.FeedParser._parsegen` (the code itself, not a copy) runs here with two of its
module's names bound to equivalents that give the same tree:

- `re`: the boundary regex it compiles for every multipart (a new boundary each email, so
  re's cache never hits; ~300 µs of sre's Python parser) matches as "the line starts with the
  separator, then the fixed tail", the tail compiled once;
- `NLCRE_eol`: "a line break at the end" is searched for in the last two characters, not by
  trying every position of a 50 kB attachment's payload (~600 µs an email).

Its input hands lines over with less work per line (~700 lines of base64 an email): a line
not starting with "-" cannot be a boundary, so while only boundaries are awaited it is not
matched against them.

The tree is the standard library's (tests/unit/test_mime_feed.py compares them); a pattern
of any other form goes to re.compile.
"""
from __future__ import annotations

import email.feedparser
import re
import types

_HEAD = "(?P<sep>"
_TAIL = r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
_BOUNDARY_TAIL = re.compile(_TAIL[1:])
_ESCAPED = re.compile(r"\\(.)", re.S)


class _Boundary:
    """`re.compile('(?P<sep>' + re.escape(separator) + _TAIL)`'s match, without compiling it."""
    __slots__ = ("separator",)

    def __init__(self, separator: str):
        self.separator = separator

    def match(self, line: str):
        if not line.startswith(self.separator):
            return None
        return _BOUNDARY_TAIL.match(line, len(self.separator))


def _compile(pattern, flags=0):
    if (not flags and isinstance(pattern, str) and pattern.startswith(_HEAD)
            and pattern.endswith(_TAIL)):
        escaped = pattern[len(_HEAD):-len(_TAIL)]
        separator = _ESCAPED.sub(r"\1", escaped)
        if re.escape(separator) == escaped:
            return _Boundary(separator)
    return re.compile(pattern, flags)


class _EndOfLine:
    """NLCRE_eol, `(\\r\\n|\\r|\\n)\\Z`, searched from two characters before the end: a match
    ends there and is at most two long, so it is the same match."""

    @staticmethod
    def search(text: str):
        return email.feedparser.NLCRE_eol.search(text, max(len(text) - 2, 0))


_parsegen = types.FunctionType(
    email.feedparser.FeedParser._parsegen.__code__,
    {**vars(email.feedparser), "re": types.SimpleNamespace(compile=_compile, escape=re.escape),
     "NLCRE_eol": _EndOfLine()},
    "_parsegen")


class _Lines(email.feedparser.BufferedSubFile):
    """BufferedSubFile, iterated by a generator, and no predicate run on a line that none of
    them can match."""

    def __init__(self):
        super().__init__()
        self._dashed = True   # every false-EOF predicate is a _Boundary's (all start "--")

    def push_eof_matcher(self, pred):
        super().push_eof_matcher(pred)
        owner = getattr(pred, "__self__", None)
        self._dashed = self._dashed and isinstance(owner, _Boundary) and owner.separator[:1] == "-"

    def pop_eof_matcher(self):
        pred = super().pop_eof_matcher()
        self._dashed = all(isinstance(getattr(p, "__self__", None), _Boundary)
                           and p.__self__.separator[:1] == "-" for p in self._eofstack)
        return pred

    def readline(self):
        lines = self._lines
        if not lines:
            return "" if self._closed else email.feedparser.NeedMoreData
        line = lines.popleft()
        if self._dashed and line[:1] != "-":
            return line
        for ateof in reversed(self._eofstack):
            if ateof(line):
                lines.appendleft(line)
                return ""
        return line

    def __iter__(self):
        return self._iterate()

    def _iterate(self):
        """What iterating BufferedSubFile gives (its __next__: readline until ""), resumed
        as a generator rather than called as a method for each line."""
        lines = self._lines
        while True:
            if not lines:
                if self._closed:
                    return
                yield email.feedparser.NeedMoreData
                continue
            line = lines.popleft()
            if self._dashed and line[:1] != "-":
                yield line
                continue
            for ateof in reversed(self._eofstack):
                if ateof(line):
                    lines.appendleft(line)
                    return
            yield line


class MimeFeedParser(email.feedparser.BytesFeedParser):
    """BytesFeedParser (compat32): the same tree, less the costs above."""
    _parsegen = _parsegen

    def __init__(self):
        super().__init__()
        self._input = _Lines()
