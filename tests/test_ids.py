"""Time-ordered ids."""

from __future__ import annotations

import itertools
import re
import threading

from qzpay.ids import IdGenerator


class TestIdGenerator:
    def test_strictly_increasing_within_one_millisecond(self) -> None:
        generator = IdGenerator("cus_")
        ids = [generator.new() for _ in range(10_000)]
        assert all(a < b for a, b in itertools.pairwise(ids))
        assert all(re.fullmatch(r"cus_[0-9A-HJKMNP-TV-Z]{26}", i) for i in ids)

    def test_unique_and_ordered_across_threads(self) -> None:
        generator = IdGenerator("evt_")
        results: list[list[str]] = [[] for _ in range(4)]

        def work(bucket: list[str]) -> None:
            bucket.extend(generator.new() for _ in range(2_000))

        threads = [threading.Thread(target=work, args=(b,)) for b in results]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        everything = [i for bucket in results for i in bucket]
        assert len(set(everything)) == len(everything)
        for bucket in results:
            assert bucket == sorted(bucket)
