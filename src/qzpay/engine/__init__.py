"""The resource-agnostic engine every synced resource runs on.

It gives each resource the same guarantees: a change and its events commit in one unit of
work, handlers run after the commit (``unit_of_work``); provider work is recorded as a task
before it is attempted, under a lease (``tasks``, ``leases``); creates are idempotent and an
unfinished one is resumed, never resent blindly (``intents``); the raise/log/no-provider
behaviour is one strategy object chosen at construction (``strategy``); and ``sync_pending``
finishes or undoes whatever was left (``pending``). ``core.Engine`` holds the shared parts.

A resource plugs in by declaring its model (a ``resource.Record``), a ``resource.Resource``
description (name, model, links field, storage calls) and a ``resource.Remote`` for its
providers (usually a ``fanout.Fanout`` over their adapters for it), then::

    engine = Engine(MY_RESOURCE, storage, bus)
    strategy = choose(engine, remote_or_none, sync_errors)
    await strategy.create(record, idempotency_key, fingerprint(**normalized_arguments))
    await strategy.modify(record_id, change, remote_visible=True)

(customers: qzpay.customers.resource and qzpay.customers.service).
"""
