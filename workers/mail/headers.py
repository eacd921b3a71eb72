"""Header lines written by hand: folded at 78 characters, identical once unfolded.

RFC 5322 asks for lines of at most 78 characters (998 at most) and allows a fold
only where the value has whitespace: a fold is CRLF inserted before that
whitespace, and unfolding (removing the CRLFs) gives the value back unchanged.

We fold ourselves rather than let the ``email`` package do it, for two reasons:

- its folder, given some long unstructured values (a quoted word, an ``&`` and
  a run of spaces in a feed title were enough), gives up and writes the whole
  value on a continuation line right after ``Subject:``; parsers (the ``email``
  package among them) then read the subject with a leading space;
- between two RFC 2047 encoded-words it may put the space of the text outside
  the words, where RFC 2047 says whitespace is ignored: two Arabic words ran
  into one.

A value with no whitespace to fold at (a long URL in ``List-Unsubscribe``) stays on
one line: a URL is never broken, so the one-click link reads the same in every
client. Such a line is still far under 998 (checked).
"""

from __future__ import annotations

import base64

from sorawatch.errors import DeliveryError

LIMIT = 78
HARD_LIMIT = 998
# 42 bytes of UTF-8 are 56 characters of base64, a 68-character encoded-word (75 is
# the most RFC 2047 allows): "Subject: " and one word fit in 78.
_WORD_BYTES = 42


def fold(name: str, value: str) -> bytes:
    """``name: value`` as header bytes (CRLF-terminated), folded at whitespace so each
    line is at most 78 characters where the value allows it. Non-ASCII values are
    written as RFC 2047 base64 encoded-words (whole characters per word).

    Raises DeliveryError when a line would pass 998 characters or the value holds
    CR or LF (a header injection, never a header).
    """
    if "\r" in value or "\n" in value:
        raise DeliveryError(f"header {name}: a line break in its value")
    # Text that looks like an encoded-word would be decoded by readers: encode it too.
    plain = value.isascii() and "=?" not in value
    words = value.split(" ") if plain else _encoded_words(value)
    lines = [f"{name}: {words[0]}"]
    for word in words[1:]:
        if not plain:
            lines.append(" " + word)
        elif not word or len(lines[-1]) + 1 + len(word) <= LIMIT:
            lines[-1] += " " + word  # a line never ends in a fold of spaces only
        else:
            # The space that was in the value begins the next line: unfolding restores it.
            lines.append(" " + word)
    if any(len(line) > HARD_LIMIT for line in lines):
        raise DeliveryError(f"header {name}: a line longer than {HARD_LIMIT} characters")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _encoded_words(value: str) -> list[str]:
    """``value`` as RFC 2047 base64 encoded-words of at most 75 characters, each one
    holding whole characters, so a reader decodes every word on its own. Spaces stay
    inside the words (whitespace between encoded-words is ignored when decoding)."""
    words: list[str] = []
    chunk = b""
    for char in value:
        data = char.encode("utf-8")
        if len(chunk) + len(data) > _WORD_BYTES:
            words.append(_word(chunk))
            chunk = b""
        chunk += data
    if chunk:
        words.append(_word(chunk))
    return words


def _word(data: bytes) -> str:
    return f"=?utf-8?b?{base64.b64encode(data).decode('ascii')}?="


def unfold(raw: bytes, name: str) -> str:
    """The value of header ``name`` in ``raw`` message bytes, unfolded as RFC 5322
    says (CRLF before whitespace removed, nothing else); "" when absent."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    unfolded = head.replace("\r\n ", " ").replace("\r\n\t", "\t")
    prefix = f"{name.lower()}:"
    for line in unfolded.split("\r\n"):
        if line.lower().startswith(prefix):
            return line[len(prefix) :].removeprefix(" ")
    return ""
