"""The fast paths in normalise give exactly what the general paths give."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from sorawatch.watcher.normalise import (
    _ARABIC,
    _CONTROL,
    _LATIN,
    _SPACE,
    _canonical_url,
    canonical_url,
    plain_text,
    script_lang,
)

HOSTS = st.sampled_from(
    ["a.com", "News.Example", "x-.y", "127.0.0.1", "a.b:443", "a.b:8080", "[::1]"]
)
PATHS = st.text(alphabet="abcXYZ09/._~!$'()*+,=:@%-;?#&= \t", max_size=20)


@given(
    scheme=st.sampled_from(["http", "https", "HTTP", "ftp", ""]),
    host=HOSTS,
    path=PATHS,
    base=st.sampled_from([None, "https://base.example/dir/feed.xml"]),
)
def test_canonical_url_fast_path_agrees_with_the_general_one(
    scheme: str, host: str, path: str, base: str | None
) -> None:
    url = f"{scheme}://{host}{path}" if scheme else path
    if not url:
        assert canonical_url(url, base) is None
        return
    assert canonical_url(url, base) == _canonical_url(url.strip(), base)


@given(st.text(max_size=40) | st.text(alphabet="ab \t\x00\x7f\u0627\ufb50\u00bd", max_size=40))
def test_plain_text_and_script_language_fast_paths(text: str) -> None:
    if "<" not in text and "&" not in text:  # no markup: the text itself, NFKC and trimmed
        nfkc = unicodedata.normalize("NFKC", _CONTROL.sub("", text))
        assert plain_text(text) == _SPACE.sub(" ", nfkc).strip()
    arabic, latin = len(_ARABIC.findall(text)), len(_LATIN.findall(text))
    assert script_lang(text) == ("ar" if arabic and arabic * 2 >= latin else "en")
