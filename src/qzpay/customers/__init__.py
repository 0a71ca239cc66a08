"""The customers domain: models, validation rules and the service."""

from qzpay.customers.models import Address, Customer

__all__ = ["Address", "Customer"]
