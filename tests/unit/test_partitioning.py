"""Our partitioner places every key exactly where Kafka's default partitioner would."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from schemas.partitioning import kafka_partitioner, murmur2, partition_for


@given(st.binary(max_size=300))
def test_murmur2_equals_kafka_pythons_reference_implementation(key: bytes) -> None:
    assert murmur2(key) == kafka_python_murmur2(key)


@given(st.binary(min_size=1, max_size=80), st.integers(min_value=1, max_value=64))
def test_partition_for_is_the_positive_hash_modulo_the_partition_count(key: bytes, partitions: int) -> None:
    assert partition_for(key, partitions) == (kafka_python_murmur2(key) & 0x7FFFFFFF) % partitions


def test_known_key_lands_on_the_partition_java_clients_choose() -> None:
    # Kafka's own test vector (UtilsTest.testMurmur2): murmur2("21") == -973932308
    assert murmur2(b"21") == -973932308 & 0xFFFFFFFF


def test_the_faust_partitioner_picks_among_all_partitions_by_key() -> None:
    all_partitions = [0, 1, 2, 3, 4, 5, 6, 7]
    assert kafka_partitioner(b"SYNC_MISSING:abc", all_partitions, [1]) == partition_for(b"SYNC_MISSING:abc", 8)


def test_the_faust_partitioner_spreads_unkeyed_messages_over_available_partitions() -> None:
    assert {kafka_partitioner(None, [0, 1, 2], [2]) for _ in range(20)} == {2}
