"""The catalog: plans, their prices, and the declarative spec kept in step with them."""

from qzpay.catalog.diff import CatalogDiff, diff
from qzpay.catalog.models import Plan, Price
from qzpay.catalog.spec import CatalogSpec, PlanSpec, PriceSpec, load_spec, loads_spec, parse_spec

__all__ = [
    "CatalogDiff",
    "CatalogSpec",
    "Plan",
    "PlanSpec",
    "Price",
    "PriceSpec",
    "diff",
    "load_spec",
    "loads_spec",
    "parse_spec",
]
