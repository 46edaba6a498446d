"""Property tests for the name, tag, capacity and ownership checks (issue 11, findings 7-10).

For any input a hostile caller can produce, each check either refuses it (with the error type that becomes
INVALID_ARGUMENT or OUT_OF_RANGE) or accepts something that satisfies every rule the cloud and the log rely on.
"""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from cfs_csi.cloud.ownership import TAG_CLUSTER, TAG_VOLUME, Origin, judge_tagged
from cfs_csi.cloud.tencent.naming import fs_name
from cfs_csi.volume.capacity import GIB, INT64_MAX, MAX_CAPACITY, CapacityError, required_capacity, stored_capacity
from cfs_csi.volume.errors import InvalidArgument
from cfs_csi.volume.names import MAX_NAME_LENGTH, check_volume_name, cut, is_shared_name
from cfs_csi.volume.params import StorageType, parse_tags

SAFE = set(string.ascii_letters + string.digits + "._+-")
FEW = settings(max_examples=150, deadline=None)

names = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=sorted(SAFE), max_size=200),
    st.builds(lambda s: "sharedCFS-" + s, st.text(alphabet=sorted(SAFE), max_size=20)),
    st.builds(lambda s: "pvc-" + s, st.text(alphabet=[*sorted(SAFE), "\x00", "\n", "/", " ", "é"], max_size=140)),
)


@FEW
@given(names)
def test_a_name_is_refused_or_safe_everywhere(name: str) -> None:
    try:
        accepted = check_volume_name(name)
    except InvalidArgument as exc:
        message = str(exc)
        assert message.startswith(("volume name", "name is required")) and "parameter" not in message
        assert len(message) < 400  # never the whole name
        return
    assert accepted == name
    assert 1 <= len(name) <= MAX_NAME_LENGTH
    assert set(name) <= SAFE and name[0].isalnum()
    assert not is_shared_name(name)
    assert len(fs_name("cls-abc", name).encode()) <= 64


@FEW
@given(st.text(max_size=400), st.integers(min_value=1, max_value=300))
def test_cut_bounds_every_logged_value(value: str, limit: int) -> None:
    short = cut(value, limit)
    assert short == value if len(value) <= limit else (short.startswith(value[:limit]) and str(len(value)) in short)
    assert len(short) <= limit + 40


tag_keys = st.one_of(
    st.text(max_size=40),
    st.builds(lambda p, s: p + s, st.sampled_from(["cfs-csi/", "CFS-CSI/", "Cfs-Csi/"]), st.text(max_size=20)),
)
tag_values = st.text(max_size=40)


@FEW
@given(st.lists(st.tuples(tag_keys, tag_values), min_size=1, max_size=5))
def test_tags_are_refused_or_free_of_reserved_keys_and_control_characters(pairs: list[tuple[str, str]]) -> None:
    text = ",".join(f"{k}:{v}" for k, v in pairs)
    try:
        tags = parse_tags("resourcetags", text)
    except InvalidArgument as exc:
        assert "resourcetags" in str(exc)
        return
    for key, value in tags:
        assert not key.lower().startswith("cfs-csi/")
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in key + value)


@FEW
@given(
    st.integers(min_value=0, max_value=INT64_MAX),
    st.integers(min_value=0, max_value=INT64_MAX),
    st.sampled_from(list(StorageType)),
)
def test_capacity_is_refused_or_fits_cfs_and_int64(required: int, limit: int, kind: StorageType) -> None:
    try:
        capacity = required_capacity(required, limit, MAX_CAPACITY[kind])
    except CapacityError:
        return
    assert GIB <= capacity <= MAX_CAPACITY[kind] <= INT64_MAX
    assert capacity % GIB == 0 and capacity >= required
    assert not limit or capacity <= limit


@FEW
@given(st.one_of(st.text(max_size=30), st.integers(), st.none(), st.booleans(), st.floats()))
def test_a_stored_capacity_always_fits_a_response(value: object) -> None:
    assert 0 <= stored_capacity(value) <= INT64_MAX


@FEW
@given(
    st.text(max_size=80),
    st.dictionaries(st.sampled_from([TAG_VOLUME, TAG_CLUSTER, "team", "cfs-csi/x"]), st.text(max_size=30)),
    st.sampled_from(["", "cls-test", "cls-other"]),
)
def test_only_a_consistent_dedicated_volume_of_this_cluster_is_ever_ours(
    name: str, tags: dict[str, str], cluster: str
) -> None:
    origin = judge_tagged(name, tags, cluster, lambda volume: fs_name(cluster, volume)).origin
    if origin is Origin.VOLUME:
        assert tags[TAG_VOLUME] and tags.get(TAG_CLUSTER, "") == cluster
        assert name == fs_name(cluster, tags[TAG_VOLUME])
        assert not is_shared_name(tags[TAG_VOLUME])
    bare = name.removeprefix(f"{cluster}_") if cluster else name
    if is_shared_name(tags.get(TAG_VOLUME, "")) or is_shared_name(bare):
        assert origin is Origin.SHARED
