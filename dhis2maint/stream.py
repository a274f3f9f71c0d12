"""An incremental reader for DHIS2's data-integrity details JSON.

``GET /api/dataIntegrity/details`` answers one JSON object, check name ->
details, with every issue of every check and no paging: a busy server sends
tens of megabytes.  :func:`iter_issue_rows` turns such a body, arriving in
chunks, into :class:`~dhis2maint.models.IntegrityIssueRow` objects as soon as
each issue is complete, in constant memory, using the standard library only.

How it stays fast: Python never walks the body character by character.

* The outer structure (``{"name": {"field": value, …, "issues": [`` …) is read
  by a small state machine; each key and metadata value is decoded with the C
  decoder (``JSONDecoder.raw_decode``) at its position.
* Inside an ``issues`` array the reader finds the LAST place in the buffer
  that looks like a boundary between two issues (``}`` ``,`` ``{`` with
  optional whitespace, found with ``str.rfind`` + one regex match) and hands
  everything up to it to ``json.loads`` as one array.  If that decode succeeds
  the slice is exactly a run of whole issues: the decoder started at a true
  issue start, so it tracked strings and nesting exactly as the real document
  does, and it ended at depth 0 outside any string.  If it fails (the ``},{``
  was inside a string, or past the end of the array), the reader retries once
  before the decoder's error position and otherwise reads issue by issue with
  ``raw_decode`` until it is past that spot.
* Whether a value that failed to decode is merely incomplete (wait for more
  bytes) or malformed (raise) is decided by an exact scanner for strings and
  brackets (regex-driven); it only runs on those rare failures.  While a value
  stays incomplete the scanner keeps its place (depth, inside a string, a
  pending escape) and later chunks are only scanned, not re-decoded nor
  joined, until it closes: one huge issue costs linear time, not quadratic.
* ``NaN``/``Infinity`` (not JSON) raise, as in the whole-body path.

Bytes are decoded with an incremental UTF-8 decoder, so a multi-byte
character split across chunks is fine.  A check's metadata (``name``,
``displayName``, ``severity``) normally precedes ``issues`` (DHIS2's field
order); when a body puts ``issues`` first, that check's issues are held until
the check's object ends.

Errors: a truncated or malformed body raises
:class:`~dhis2maint.errors.InvalidResponseError` after every complete row
before the damage was yielded -- never a bare ``ValueError``.
"""
import codecs
import json
import re
import types
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple,
                    Union, cast)

import attr

from . import convert, models
from .convert import NonFiniteNumber
from .errors import InvalidResponseError

__all__ = ["iter_issue_rows", "IssueStreamParser", "MAX_VALUE_CHARS"]

#: ``on_check(key, metadata, issue_count)``: a check's object ended (after its rows);
#: ``metadata`` holds every field of it but ``issues``.
OnCheckEnd = Callable[[str, Dict[str, Any], int], None]

#: What the parser hands out (see :meth:`IssueStreamParser.pieces`): a check's
#: (name, display name, severity) and decoded issues, or None and built rows.
Piece = Tuple[Optional[Tuple[str, Optional[str], Any]], List[Any]]

#: A single JSON value (one issue, one metadata field) larger than this is
#: treated as a broken body rather than buffered without limit.
MAX_VALUE_CHARS = 16 * 1024 * 1024

#: A value this close to the end of the buffer is decoded from a copy (see _value).
_SHORT_TAIL = 4096

_WS_CHARS = " \t\n\r"
_WS = re.compile(r"[ \t\n\r]*")
_SEP = re.compile(r"\}[ \t\n\r]*,[ \t\n\r]*\{")
_STRING_REST = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.S)  # after an opening quote
_STRUCT = re.compile(r'["{}\[\]]')
_TOKEN = re.compile(r"[^ \t\n\r,:\]}\[{\"]*")
_STRUCT_RUN = re.compile(r'"|[{\[]+|[}\]]+')  # a quote, or a run of openers or closers
_STR_BODY = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*', re.S)  # inside a string, up to its end

_raw_decode = convert.strict_raw_decode  # NaN/Infinity raise NonFiniteNumber
_loads = convert.strict_loads

# parser states
_TOP_OPEN, _TOP_FIRST, _TOP_KEY, _TOP_COLON, _CHECK_OPEN, _CHECK_FIRST, _CHECK_KEY, \
    _CHECK_COLON, _CHECK_VALUE, _CHECK_NEXT, _ISSUE_FIRST, _ISSUE, _ISSUE_NEXT, _TOP_NEXT, \
    _DONE = range(15)

_EXPECTED = {
    _TOP_OPEN: "'{' (a JSON object of check results)",
    _TOP_FIRST: "a check name or '}'",
    _TOP_KEY: "a check name",
    _TOP_COLON: "':'",
    _CHECK_OPEN: "'{'",
    _CHECK_FIRST: "a field name or '}'",
    _CHECK_KEY: "a field name",
    _CHECK_COLON: "':'",
    _CHECK_VALUE: "a value",
    _CHECK_NEXT: "',' or '}'",
    _ISSUE_FIRST: "an issue or ']'",
    _ISSUE: "an issue",
    _ISSUE_NEXT: "',' or ']'",
    _TOP_NEXT: "',' or '}'",
    _DONE: "the end of the body",
}

# The metadata a row carries; issues are streamed at once when all of them
# came before "issues", else held until the check's object ends.
_ROW_FIELDS = ("name", "displayName", "severity")


def _fillable(cls: type, names: Sequence[str]) -> bool:
    """Whether filling the slots of a bare ``cls`` instance does exactly what its
    ``__init__`` does with every field given positionally: attrs fields ``names``
    in this order, all slotted, no validators, converters or pre/post-init hooks.
    Otherwise rows are built the ordinary way."""
    try:
        fields = attr.fields(cls)
    except (TypeError, attr.exceptions.NotAnAttrsClassError):
        return False
    if tuple(f.name for f in fields) != tuple(names):
        return False
    if any(f.validator is not None or f.converter is not None for f in fields):
        return False
    if hasattr(cls, "__attrs_post_init__") or hasattr(cls, "__attrs_pre_init__"):
        return False
    return all(type(cls.__dict__.get(name)) is types.MemberDescriptorType for name in names)


def _twin(cls: type) -> Optional[type]:
    """A mutable subclass of ``cls`` adding nothing to its layout, when ``cls``
    qualifies (see ``_fillable``): an object built as a twin with plain attribute
    stores (the interpreter's fastest store: the twin undoes the frozen
    ``__setattr__``) and then given ``cls`` as its class is the object
    ``cls(...)`` would have built.  Building ~a million frozen attrs objects
    through ``__init__`` costs more than decoding their JSON; this is ~40 %
    cheaper.

    A subclass rather than a sibling with the same ``__slots__`` (#20.10): the
    ``__class__`` assignment then finds both share ``cls``'s layout without
    comparing slot names (a sibling cost ~450 instructions per assignment on
    3.13), and it is allowed on every Python (a sibling is refused before 3.12
    because of attrs' ``__weakref__`` slot).  None when the probe is refused."""
    try:
        twin = type("_Filling" + cls.__name__, (cls,), {
            "__slots__": (), "__setattr__": object.__setattr__,
            "__delattr__": object.__delattr__, "__init__": object.__init__})
        probe: Any = twin()
        probe.__class__ = cls
    except TypeError:
        return None
    if type(probe) is not cls:
        return None
    return twin


_ISSUE_TWIN = _ROW_TWIN = None
if _fillable(models.DataIntegrityIssue, ("id", "name", "comment", "refs")) and _fillable(
        models.IntegrityIssueRow, ("check_name", "check_display_name", "severity", "issue")):
    _ISSUE_TWIN = _twin(models.DataIntegrityIssue)
    _ROW_TWIN = _twin(models.IntegrityIssueRow)


def _last_boundary(buf: str, lo: int, hi: int) -> Optional[Tuple[int, int]]:
    """(index of '}', index of the next '{') of the last issue boundary in
    ``buf[lo:hi]``, or None.  Only a candidate: it may lie inside a string."""
    rfind = buf.rfind
    match = _SEP.match
    i = rfind("}", lo, hi)
    while i > lo:
        m = match(buf, i)
        if m is not None and m.end() <= hi:
            return i, m.end() - 1
        i = rfind("}", lo, i)
    return None


def _scan(text: str, i: int, state: List[Any]) -> bool:
    """Go on scanning an incomplete JSON value over ``text[i:]``; True when it ends there.

    ``state`` = [kind, depth, in_string, escape] is updated in place so the
    next piece of text continues where this one stopped; kind is "s" (a
    string: scanning starts after its quote), "c" (an object or array) or
    "t" (a number or literal)."""
    n = len(text)
    if state[0] == "t":
        return _TOKEN.match(text, i).end() < n  # type: ignore[union-attr]  # matches ""
    depth, in_string, escape = state[1], state[2], state[3]
    match = _STR_BODY.match
    search = _STRUCT_RUN.search
    try:
        if escape:
            if i >= n:
                return False
            i += 1
            escape = False
        while True:
            if in_string:
                e = match(text, i).end()  # type: ignore[union-attr]  # matches ""
                if e >= n:
                    return False
                if text[e] == '"':
                    in_string = False
                    i = e + 1
                    if depth <= 0:
                        return True
                    continue
                escape = True  # a backslash is the last character
                return False
            m = search(text, i)
            if m is None:
                return False
            j = m.start()
            ch = text[j]
            i = m.end()
            if ch == '"':
                in_string = True
                continue
            if ch in "{[":
                depth += i - j
            else:
                depth -= i - j
                if depth <= 0:
                    return True
    finally:
        state[1], state[2], state[3] = depth, in_string, escape


class IssueStreamParser:
    """The state machine behind :func:`iter_issue_rows`.

    ``feed(text)`` is a generator of rows for the text received so far;
    ``feed(text, eof=True)`` for the last piece also checks the body ended
    properly.  ``rows`` counts the rows produced.

    Inside, :meth:`pieces` hands out what the text completes without building
    rows: ``(row_meta, issues)`` -- a check's (name, display name, severity) and
    the decoded issues of one run -- or ``(None, rows)`` for rows it built
    itself.  One generator (:func:`build_rows`) turns them into rows, so each row costs
    one generator step, not a chain of them (#20.10).
    """

    what: str
    rows: int
    _buf: str
    _pos: int
    _offset: int
    _state: int
    _key: Any
    _field: Any
    _meta: Any  # a dict inside a check's object, else None
    _row_meta: Any  # a (name, display name, severity) tuple, or None
    _pending: Any  # a list of issues, or None
    _no_batch_until: int

    def __init__(self, what: str = "the details body") -> None:
        self.what = what
        self.rows = 0
        self._buf = ""
        self._pos = 0
        self._offset = 0  # characters of the body before _buf[0]
        self._state = _TOP_OPEN
        self._key = None  # map key of the current check
        self._field = None  # current field name inside a check
        self._meta = None  # decoded metadata fields of the current check
        self._row_meta = None  # (name, display name, severity) while streaming
        self._pending = None  # issues held until the check's metadata is known
        self._no_batch_until = -1  # body offset: read issue by issue up to here
        # scanner state while the value at _pos is incomplete
        self._open: Optional[List[Any]] = None
        self._open_size = 0  # characters of that value so far
        self._parts: List[str] = []  # text received while it stays incomplete
        #: Called as ``on_check(key, metadata, issue_count)`` when a check's object
        #: ends (after its rows were yielded); ``metadata`` has every field but issues.
        self.on_check: Optional[OnCheckEnd] = None
        self._check_start = 0  # self.rows when the current check began

    # --- errors ---------------------------------------------------------------

    def _error(self, text: str) -> InvalidResponseError:
        return InvalidResponseError("{}: {} (after {} complete issue rows)".format(
            self.what, text, self.rows))

    def _unexpected(self, buf: str, pos: int, state: int) -> InvalidResponseError:
        snippet = buf[pos:pos + 40]
        return self._error("malformed JSON at character {}: expected {}, found {!r}".format(
            self._offset + pos, _EXPECTED[state], snippet))

    # --- values -----------------------------------------------------------------

    def _value(self, buf: str, pos: int, eof: bool) -> Optional[Tuple[Any, int]]:
        """(value, end) of the JSON value at ``pos``, or None when more text is needed."""
        try:
            if 0 < len(buf) - pos <= _SHORT_TAIL:
                # Typically the incomplete issue at the end of a chunk: decoding a
                # copy keeps the failure cheap (the decoder's error counts the
                # lines before the position: the whole buffer, ~3 % of a stream).
                value, end = _raw_decode(buf[pos:])
                end += pos
            else:
                value, end = _raw_decode(buf, pos)
        except (RecursionError, MemoryError, OverflowError) as exc:
            raise self._error("JSON nested too deeply at character {}".format(
                self._offset + pos) if isinstance(exc, RecursionError) else
                "a JSON value at character {} could not be read ({})".format(
                    self._offset + pos, type(exc).__name__)) from None
        except NonFiniteNumber as exc:
            raise self._non_finite(exc, pos) from None
        except ValueError as exc:
            c = buf[pos]
            state = ["s" if c == '"' else "c" if c in "{[" else "t", 0, c == '"', False]
            is_open = not _scan(buf, pos + 1 if c == '"' else pos, state)
            if not eof and is_open:
                if len(buf) - pos > MAX_VALUE_CHARS:
                    raise self._error("a single JSON value is larger than {} characters".format(
                        MAX_VALUE_CHARS)) from None
                # Wait for the rest; feed() scans new text only until it closes.
                self._open = state
                self._open_size = len(buf) - pos
                return None
            if eof and is_open:
                raise self._error("the body ended inside a value (truncated?)") from None
            raise self._error("malformed JSON at character {}: {}".format(
                self._offset + pos, getattr(exc, "msg", exc))) from None
        if not eof and (end >= len(buf) or (
                buf[pos] not in '"{[' and _TOKEN.match(buf, pos).end() >= len(buf))):  # type: ignore[union-attr]  # matches ""
            return None  # a number ("12", "12.", "1e") may go on in the next chunk
        return value, end

    # --- checks -------------------------------------------------------------------

    def _compute_row_meta(self) -> Tuple[str, Optional[str],
                                         Union[models.DataIntegritySeverity, str, None]]:
        meta = self._meta
        if "name" not in meta:
            meta = dict(meta, name=self._key)
        result = convert.structure(meta, models.DataIntegrityResult, self.what)
        return result.name, result.display_name, result.severity

    def _issue(self, data: Any) -> models.DataIntegrityIssue:
        try:
            return convert.issue_from_dict(data)
        except TypeError as exc:
            raise self._error("an issue of check {!r}: {}".format(self._key, exc)) from None

    def _flush_pending(self) -> List[models.IntegrityIssueRow]:
        name, display, severity = self._compute_row_meta()
        pending, self._pending = self._pending, None
        row = models.IntegrityIssueRow
        self.rows += len(pending)
        return [row(name, display, severity, issue) for issue in pending]

    # --- the state machine ------------------------------------------------------

    def _non_finite(self, exc: Exception, pos: int) -> InvalidResponseError:
        return self._error("{} at or after character {} is not a number JSON allows (NaN and "
                           "Infinity are not JSON; a broken server or proxy?)".format(
                               str(exc)[:40], self._offset + pos))

    def feed(self, text: str, eof: bool = False) -> Iterator[models.IntegrityIssueRow]:
        """Parse ``text`` (the next piece of the body); yield the rows it completes."""
        return build_rows(self, self.pieces(text, eof))

    def drain(self) -> Iterator[models.IntegrityIssueRow]:
        """After the chunks broke off: yield the rows the text so far completes
        (as if the body ended here), without raising about the missing rest."""
        return build_rows(self, self.drain_pieces())

    def drain_pieces(self) -> Iterator[Piece]:
        """:meth:`drain` as :meth:`pieces`."""
        try:
            yield from self.pieces("", eof=True)
        except InvalidResponseError:
            pass

    def pieces(self, text: str, eof: bool = False) -> Iterator[Piece]:
        """:meth:`feed` before the rows are built: ``(row_meta, decoded issues)``
        or ``(None, rows)``.  The consumer must add the rows it builds from
        decoded issues to ``rows`` before asking for the next piece."""
        if self._open is not None:
            closed = False
            if text:
                closed = _scan(text, 0, self._open)
                self._parts.append(text)
                self._open_size += len(text)
                if not closed and self._open_size > MAX_VALUE_CHARS:
                    raise self._error("a single JSON value is larger than {} characters".format(
                        MAX_VALUE_CHARS))
            if not closed and not eof:
                return
            text = "".join(self._parts)
            self._parts = []
            self._open = None
        buf = self._buf
        pos = self._pos
        if pos:
            self._offset += pos
            buf = buf[pos:] + text
        elif text:
            buf = buf + text
        pos = 0
        n = len(buf)
        state = self._state
        loads = _loads
        while True:
            if pos < n and buf[pos] in _WS_CHARS:
                pos = _WS.match(buf, pos).end()  # type: ignore[union-attr]  # _WS matches ""
            if pos >= n:
                break
            c = buf[pos]

            if state == _ISSUE:
                if c == "{":
                    batch = self._batch(buf, pos, n, loads)
                    if batch is not None:
                        items, pos = batch
                        if self._row_meta is not None:
                            yield self._row_meta, items
                        else:
                            assert self._pending is not None  # held until the metadata
                            self._pending.extend(self._issue(d) for d in items)
                        continue
                got = self._value(buf, pos, eof)
                if got is None:
                    break
                data, pos = got
                if self._row_meta is not None:
                    yield self._row_meta, [data]
                else:
                    assert self._pending is not None  # held until the metadata
                    self._pending.append(self._issue(data))
                state = _ISSUE_NEXT

            elif state == _ISSUE_NEXT:
                if c == ",":
                    pos += 1
                    state = _ISSUE
                elif c == "]":
                    pos += 1
                    state = _CHECK_NEXT
                else:
                    raise self._unexpected(buf, pos, state)

            elif state == _ISSUE_FIRST:
                if c == "]":
                    pos += 1
                    state = _CHECK_NEXT
                else:
                    state = _ISSUE

            elif state in (_TOP_KEY, _CHECK_KEY) or (
                    c == '"' and state in (_TOP_FIRST, _CHECK_FIRST)):
                if c != '"':
                    raise self._unexpected(buf, pos, state)
                got = self._value(buf, pos, eof)
                if got is None:
                    break
                key, pos = got
                if state in (_TOP_KEY, _TOP_FIRST):
                    self._key = key
                    state = _TOP_COLON
                else:
                    self._field = key
                    state = _CHECK_COLON

            elif state == _CHECK_COLON or state == _TOP_COLON:
                if c != ":":
                    raise self._unexpected(buf, pos, state)
                pos += 1
                state = _CHECK_VALUE if state == _CHECK_COLON else _CHECK_OPEN

            elif state == _CHECK_VALUE:
                if self._field == "issues" and c == "[":
                    pos += 1
                    state = _ISSUE_FIRST
                    # A run that failed because it reached into this array may be
                    # tried again from here: at most one more failure per array.
                    self._no_batch_until = -1
                    if self._pending is None and all(f in self._meta for f in _ROW_FIELDS):
                        self._row_meta = self._compute_row_meta()
                    elif self._pending is None:
                        self._pending = []
                    continue
                got = self._value(buf, pos, eof)
                if got is None:
                    break
                value, pos = got
                if self._field == "issues":
                    if value is not None:
                        raise self._error("'issues' of check {!r} is not a list".format(
                            self._key))
                else:
                    self._meta[self._field] = value
                state = _CHECK_NEXT

            elif state == _CHECK_NEXT or state == _CHECK_FIRST:
                if c == "," and state == _CHECK_NEXT:
                    pos += 1
                    state = _CHECK_KEY
                elif c == "}":
                    pos += 1
                    if self._pending is not None:
                        yield None, self._flush_pending()
                    if self.on_check is not None:
                        self.on_check(self._key, self._meta, self.rows - self._check_start)
                    self._row_meta = None
                    self._meta = None
                    state = _TOP_NEXT
                else:
                    raise self._unexpected(buf, pos, state)

            elif state == _CHECK_OPEN:
                if c != "{":
                    got = self._value(buf, pos, eof)
                    if got is None:
                        break
                    raise self._error("the result of check {!r} is not a JSON object".format(
                        self._key))
                pos += 1
                self._meta = {}
                self._row_meta = None
                self._pending = None
                self._check_start = self.rows
                state = _CHECK_FIRST

            elif state == _TOP_NEXT or state == _TOP_FIRST:
                if c == "," and state == _TOP_NEXT:
                    pos += 1
                    state = _TOP_KEY
                elif c == "}":
                    pos += 1
                    state = _DONE
                else:
                    raise self._unexpected(buf, pos, state)

            elif state == _TOP_OPEN:
                if c != "{":
                    if c == "<":
                        raise self._error("an HTML page, not JSON")
                    raise self._unexpected(buf, pos, state)
                pos += 1
                state = _TOP_FIRST

            else:  # _DONE
                raise self._error("unexpected data after the end of the JSON object: {!r}"
                                  .format(buf[pos:pos + 40]))

        self._buf = buf
        self._pos = pos
        self._state = state
        if eof and state != _DONE:
            if state == _TOP_OPEN and not buf.strip():
                raise self._error("empty body where a JSON object was expected")
            raise self._error("the body ended before the JSON was complete (truncated?)")

    def _batch(self, buf: str, pos: int, n: int,
               loads: Callable[[str], Any]) -> Optional[Tuple[List[Any], int]]:
        """Decode the longest run of whole issues starting at ``pos`` in one
        ``json.loads`` call: (issues, position of the next issue) or None."""
        cand = _last_boundary(buf, pos, n)
        if cand is None or self._offset + cand[0] <= self._no_batch_until:
            return None
        error_at = None
        try:
            return loads("".join(("[", buf[pos:cand[0] + 1], "]"))), cand[1]  # 2 copies, not 3
        except (RecursionError, MemoryError, OverflowError):
            pass
        except NonFiniteNumber as exc:
            # The decoder started at a true issue start, so the number is really there.
            raise self._non_finite(exc, pos) from None
        except ValueError as exc:
            error_at = getattr(exc, "pos", None)
        # Up to this candidate, read issue by issue (it may sit inside a string).
        self._no_batch_until = self._offset + cand[0]
        if error_at is None:
            return None
        # Retry once before the spot the decoder choked on: typically the ']'
        # closing this check's issues, when the candidate lay in the next check.
        # (error_at counts the "[" prepended above.)
        retry = _last_boundary(buf, pos, min(n, pos + error_at - 1))
        if retry is None:
            return None
        try:
            return loads("".join(("[", buf[pos:retry[0] + 1], "]"))), retry[1]
        except NonFiniteNumber as exc:
            raise self._non_finite(exc, pos) from None
        except (ValueError, RecursionError, MemoryError, OverflowError):
            return None


def build_rows(parser: IssueStreamParser, pieces: Iterable[Piece]
               ) -> Iterator[models.IntegrityIssueRow]:
    """The rows of ``parser``'s pieces: the one loop that runs per row (#20.10).
    Closes ``pieces`` when it ends or is closed.

    A decoded issue is built as ``IntegrityIssueRow(..., issue_from_dict(d))``
    would build it, but by filling twins' slots (see ``_twin``) when it is plain
    (an object; string or null fields; refs absent, null or a list of strings);
    anything else goes through ``convert.issue_from_dict`` and its errors.  The
    test for plain is written out here and rows are counted per run, not per
    row: a call per row costs ~5 %, a counter ~1.5 %."""
    issue_cls = models.DataIntegrityIssue
    row_cls = models.IntegrityIssueRow
    issue_twin = _ISSUE_TWIN
    row_twin = _ROW_TWIN
    issue: Any
    row: Any
    try:
        for meta, items in pieces:
            if meta is None:
                yield from items  # built (and counted) by the parser
                continue
            check_name, display, severity = meta
            base = parser.rows
            if issue_twin is None or row_twin is None:  # models built by __init__ only
                for done, data in enumerate(items):
                    parser.rows = base + done
                    issue = parser._issue(data)
                    yield row_cls(check_name, display, severity, issue)
                parser.rows = base + len(items)
                continue
            for data in items:
                if data.__class__ is dict:
                    ident = data.get("id")
                    name = data.get("name")
                    comment = data.get("comment")
                    refs = data.get("refs")
                    if refs is None:
                        refs = []
                    elif refs.__class__ is list:
                        for ref in refs:
                            if ref.__class__ is not str:
                                refs = None
                                break
                    else:
                        refs = None
                else:  # not an object: the general path raises
                    ident = name = comment = refs = None
                if refs is not None and (ident.__class__ is str or ident is None) \
                        and (name.__class__ is str or name is None) \
                        and (comment is None or comment.__class__ is str):
                    issue = issue_twin()
                    issue.id = ident
                    issue.name = name
                    issue.comment = comment
                    issue.refs = refs
                    issue.__class__ = issue_cls
                else:  # the general path: convert.issue_from_dict, its conversions and errors
                    parser.rows = base + _position(items, data)
                    issue = parser._issue(data)
                row = row_twin()
                row.check_name = check_name
                row.check_display_name = display
                row.severity = severity
                row.issue = issue
                row.__class__ = row_cls
                yield row
            parser.rows = base + len(items)
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()


def _position(items: List[Any], item: Any) -> int:
    """The index of ``item`` itself (not an equal one) in ``items``."""
    for i, x in enumerate(items):
        if x is item:
            return i
    raise ValueError("not in the run")  # pragma: no cover - item comes from items


def iter_issue_rows(chunks: Iterable[bytes], what: str = "the details body",
                    on_check: Optional[OnCheckEnd] = None,
                    ) -> Iterator[models.IntegrityIssueRow]:
    """Rows from a details body given as an iterable of ``bytes`` chunks.

    Yields :class:`~dhis2maint.models.IntegrityIssueRow` objects in body order;
    raises :class:`~dhis2maint.errors.InvalidResponseError` after the last
    complete row when the body is malformed, not UTF-8, or ends early.
    Exceptions raised by ``chunks`` itself pass through unchanged, after the
    rows completed by the bytes received before them.  ``on_check(key, metadata,
    issue_count)`` is called as each check's object ends, after its rows.
    """
    parser = IssueStreamParser(what)
    parser.on_check = on_check
    return build_rows(parser, body_pieces(parser, chunks, what))


def body_pieces(parser: IssueStreamParser, chunks: Iterable[bytes], what: str
                 ) -> Iterator[Piece]:
    """The parser's pieces for a body in ``bytes`` chunks, decoded as UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    at_start = True
    chunks = iter(chunks)
    while True:
        try:
            chunk = next(chunks)
        except StopIteration:
            break
        except Exception:
            yield from parser.drain_pieces()
            raise
        if not chunk:
            continue
        try:
            text = decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            good = exc.object[:exc.start].decode("utf-8", "replace")
            yield from parser.pieces(_strip_bom(good) if at_start else good)
            raise InvalidResponseError("{}: the body is not valid UTF-8 (after {} complete "
                                       "issue rows)".format(what, parser.rows)) from None
        if at_start and text:
            text = _strip_bom(text)
            at_start = False
        if text:
            yield from parser.pieces(text)
    try:
        text = decoder.decode(b"", True)
    except UnicodeDecodeError:
        yield from parser.pieces("")
        raise InvalidResponseError("{}: the body ends inside a UTF-8 character (after {} "
                                   "complete issue rows)".format(what, parser.rows)) from None
    yield from parser.pieces(text, eof=True)


def _strip_bom(text: str) -> str:
    return text[1:] if text[:1] == "\ufeff" else text
