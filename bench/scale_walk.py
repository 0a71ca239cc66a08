"""Child process for the scale section: walk every customer with iterate(), report peak RSS."""

from __future__ import annotations

import asyncio
import json
import sys

from bench.stats import peak_rss_mb
from qzpay import Billing


async def walk(url: str) -> int:
    count = 0
    async with Billing(storage=url) as billing:
        async for _ in billing.customers.iterate(page_size=500):
            count += 1
    return count


if __name__ == "__main__":
    url, expected = sys.argv[1], int(sys.argv[2])
    seen = asyncio.run(walk(url))
    if seen != expected:
        raise SystemExit(f"iterate saw {seen} customers, expected {expected}")
    print(json.dumps({"peak_rss_mb": round(peak_rss_mb(), 1), "customers": seen}))
