"""The synchronous batch loader: primed keys fetched together on the first load, each key once."""

from __future__ import annotations

from vault.api.loaders import BatchLoader


def test_primed_keys_are_fetched_in_one_batch_and_cached() -> None:
    batches: list[list[int]] = []

    def fetch(keys: list[int]) -> dict[int, str]:
        batches.append(keys)
        return {k: str(k) for k in keys if k != 3}

    loader: BatchLoader[int, str] = BatchLoader(fetch)
    loader.prime([1, 2, 3])
    assert loader.load(2) == "2"
    assert loader.load(1) == "1" and loader.load(3) is None
    assert batches == [[1, 2, 3]]
    loader.prime([1, 4])
    assert loader.load(5) == "5"
    assert batches == [[1, 2, 3], [4, 5]] and loader.batches == 2
