"""The broker: a sans-IO protocol core per connection, and what it talks to.

``protocol`` is the core (bytes and time in, bytes and effects out);
``transport`` is its asyncio edge; ``session``, ``registry`` and ``topic``
hold the state MQTT defines; ``broker`` wires them to a listener and a store.
"""
