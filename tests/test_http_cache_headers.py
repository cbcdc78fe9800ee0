"""HTTP cache headers, the framework-neutral helpers: the entity-tag parser and
If-None-Match, preconditions and HTTP dates, the Cache-Control builder, Vary merging and
Surrogate-Key checks. The middleware is tested in test_http_cache_middleware.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from templategen.reference.errors import ConfigurationError
from templategen.reference.http_cache_headers import (
    CacheControl,
    CachePolicy,
    EntityTag,
    cdn_catalog,
    evaluate_preconditions,
    if_none_match_matches,
    make_etag,
    merge_vary,
    parse_entity_tag_list,
    parse_http_date,
    surrogate_key_header,
)

LAST_MODIFIED = "Sun, 06 Nov 1994 08:49:37 GMT"


# --- entity-tags and If-None-Match ---------------------------------------------------

ETAG_TEXT = st.text(
    alphabet=st.sampled_from([chr(c) for c in [0x21, *range(0x23, 0x7F), 0x80, 0xFF]]),
    max_size=12,
)
ENTITY_TAGS = st.builds(EntityTag, ETAG_TEXT, weak=st.booleans())
SEPARATORS = st.sampled_from([",", ", ", " ,", "\t,\t", " , , "])


@given(st.lists(ENTITY_TAGS, max_size=8), st.data())
def test_entity_tag_lists_round_trip_through_formatting_and_parsing(
    tags: list[EntityTag], data: st.DataObject
) -> None:
    text = ""
    for i, tag in enumerate(tags):
        text += (data.draw(SEPARATORS) if i else data.draw(st.sampled_from(["", " "]))) + str(tag)
    assert parse_entity_tag_list(text + data.draw(st.sampled_from(["", " ", ","]))) == tuple(tags)


@given(st.one_of(st.text(), st.text(alphabet='W/" ,*\tab\x00\x7f\x80é')))
def test_parsing_arbitrary_text_never_raises(text: str) -> None:
    for tag in parse_entity_tag_list(text):
        assert isinstance(tag, EntityTag)
    if_none_match_matches(text, EntityTag("x"))
    EntityTag.parse(text)
    parse_http_date(text)


def test_malformed_members_are_skipped_and_well_formed_ones_kept() -> None:
    text = 'abc, "a b", W/"ok", "unterminated, *, "fine"x, "last"'
    assert parse_entity_tag_list(text) == (EntityTag("ok", weak=True), EntityTag("last"))


def test_comma_inside_a_quoted_entity_tag_is_part_of_it() -> None:
    assert parse_entity_tag_list('"a,b", "c"') == (EntityTag("a,b"), EntityTag("c"))
    assert not if_none_match_matches('"a,b"', EntityTag("a"))


def test_star_matches_only_an_existing_representation() -> None:
    assert if_none_match_matches(" * ", None)
    assert not if_none_match_matches("*", EntityTag("x"), exists=False)
    assert not if_none_match_matches('*, "x"', EntityTag("y"))  # '*' in a list is malformed


def test_entity_tag_refuses_text_with_quote_or_space() -> None:
    for text in ['a"b', "a b", "\x7f"]:
        with pytest.raises(ConfigurationError, match="entity-tag"):
            EntityTag(text)


def test_make_etag_formats_strong_and_weak_tags() -> None:
    assert str(make_etag(b"")) == '"47DEQpj8HBSa-_TImW-5JA"'
    assert str(make_etag(b"", weak=True)) == 'W/"47DEQpj8HBSa-_TImW-5JA"'


def test_entity_tag_parse_reads_one_etag_header() -> None:
    assert EntityTag.parse(' W/"x" ') == EntityTag("x", weak=True)
    assert EntityTag.parse("x") is None


# --- preconditions and dates --------------------------------------------------------

LM = datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)


def test_unsafe_method_with_matching_if_none_match_gets_412_from_the_helper() -> None:
    assert evaluate_preconditions("PUT", if_none_match="*", etag=EntityTag("v")) == 412
    assert evaluate_preconditions("PUT", if_none_match="*", exists=False) is None
    assert evaluate_preconditions("GET", if_none_match='W/"v"', etag=EntityTag("v")) == 304


def test_if_modified_since_counts_only_for_get_and_head() -> None:
    ims = LAST_MODIFIED
    assert evaluate_preconditions(
        "HEAD", if_none_match=None, if_modified_since=ims, last_modified=LM
    )
    kwargs = {"if_none_match": None, "if_modified_since": ims, "last_modified": LM}
    assert evaluate_preconditions("POST", **kwargs) is None  # type: ignore[arg-type]
    assert evaluate_preconditions("get", **kwargs) is None  # type: ignore[arg-type]


def test_invalid_if_modified_since_is_ignored() -> None:
    for ims in ["yesterday", f"{LAST_MODIFIED}, {LAST_MODIFIED}", "Sun, 31 Feb 1994 08:49:37 GMT"]:
        assert (
            evaluate_preconditions(
                "GET", if_none_match=None, if_modified_since=ims, last_modified=LM
            )
            is None
        )


@pytest.mark.parametrize(
    "text",
    ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"],
)
def test_all_three_http_date_formats_parse(text: str) -> None:
    assert parse_http_date(text) == LM


def test_naive_last_modified_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="timezone-aware"):
        evaluate_preconditions(
            "GET",
            if_none_match=None,
            if_modified_since=LAST_MODIFIED,
            last_modified=LM.replace(tzinfo=None),
        )


# --- Cache-Control, Vary, Surrogate-Key ---------------------------------------------

CONFLICTS = [
    ({"public": True, "private": True, "max_age": 1}, "public", "private"),
    ({"private": True, "s_maxage": 1}, "private", "s-maxage"),
    *[
        ({"no_store": True, other: value}, "no-store", other.replace("_", "-"))
        for other, value in [
            ("public", True),
            ("no_cache", True),
            ("must_revalidate", True),
            ("max_age", 0),
            ("s_maxage", 0),
            ("stale_while_revalidate", 1),
            ("stale_if_error", 1),
            ("immutable", True),
        ]
    ],
    ({"no_cache": True, "immutable": True, "max_age": 1}, "no-cache", "immutable"),
    *[
        ({strict: True, stale: 5, "max_age": 1}, strict.replace("_", "-"), stale.replace("_", "-"))
        for strict in ("no_cache", "must_revalidate")
        for stale in ("stale_while_revalidate", "stale_if_error")
    ],
    ({"immutable": True}, "immutable", "max-age"),
    ({"stale_while_revalidate": 5}, "stale-while-revalidate", "max-age"),
    ({"stale_if_error": 5, "public": True}, "stale-if-error", "s-maxage"),
]


@pytest.mark.parametrize(("directives", "first", "second"), CONFLICTS, ids=str)
def test_cache_control_refuses_each_contradiction_naming_both_directives(
    directives: dict[str, object], first: str, second: str
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        CacheControl(**directives)  # type: ignore[arg-type]
    assert first in str(refused.value)
    assert second in str(refused.value)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "60"])
def test_cache_control_refuses_deltas_that_are_not_whole_seconds(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="max-age must be a whole number"):
        CacheControl(max_age=bad)  # type: ignore[arg-type]


def test_cache_control_refuses_flags_that_are_not_booleans_and_an_empty_header() -> None:
    with pytest.raises(ConfigurationError, match="no-cache must be True or False"):
        CacheControl(no_cache="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="at least one directive"):
        CacheControl()


def test_cache_control_writes_directives_in_fixed_order() -> None:
    everything = CacheControl(
        public=True, must_revalidate=True, max_age=0, s_maxage=2, immutable=True
    )
    assert str(everything) == "public, must-revalidate, max-age=0, s-maxage=2, immutable"
    relaxed = CacheControl(max_age=60, stale_while_revalidate=30, stale_if_error=600)
    assert str(relaxed) == "max-age=60, stale-while-revalidate=30, stale-if-error=600"
    assert str(CacheControl(private=True, no_store=True)) == "private, no-store"
    assert str(CacheControl(max_age=0)) == "max-age=0"  # zero is a directive, not "unset"


def test_cache_policy_refuses_browser_only_directives_in_surrogate_control() -> None:
    with pytest.raises(ConfigurationError, match="Surrogate-Control cannot carry public"):
        CachePolicy(surrogate_control=CacheControl(public=True, max_age=5))
    with pytest.raises(ConfigurationError, match="Surrogate-Control cannot carry s-maxage"):
        CachePolicy(surrogate_control=CacheControl(s_maxage=0))


def test_cache_policy_refuses_bad_vary_names_and_one_string() -> None:
    with pytest.raises(ConfigurationError, match="field names"):
        CachePolicy(vary=("Accept Encoding",))
    with pytest.raises(ConfigurationError, match="not one string"):
        CachePolicy(vary="Accept-Encoding")  # type: ignore[arg-type]


def test_merge_vary_deduplicates_case_insensitively_keeping_first_spelling() -> None:
    assert merge_vary("Accept-Encoding, Cookie", "accept-encoding,Origin", None) == (
        "Accept-Encoding, Cookie, Origin"
    )
    assert merge_vary(None, " ,, ") == ""


def test_merge_vary_star_absorbs_everything() -> None:
    assert merge_vary("Accept-Encoding", "Cookie, *") == "*"


def test_surrogate_keys_are_deduplicated_and_space_separated() -> None:
    assert surrogate_key_header(["catalog", "product:1", "catalog"]) == "catalog product:1"


@pytest.mark.parametrize("key", ["", "two words", "tab\there", "nl\n", "nul\x00", "del\x7f", "é"])
def test_surrogate_key_with_whitespace_control_or_non_ascii_is_refused(key: str) -> None:
    with pytest.raises(ConfigurationError, match="surrogate key"):
        surrogate_key_header(["ok", key])


def test_surrogate_keys_given_as_one_string_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="not one string"):
        cdn_catalog("catalog products")
