"""The ground floor: what every folder of the hub may use.

Settings (``settings``), structured logs that never show a personal ID (``logs``),
Kafka client security (``kafka_security``), topic administration (``topic_admin``:
creating and checking topics on a broker, as opposed to ``schemas.topics``, which only
*names* them) and the embedded development broker (``broker``).

Nothing here imports ``connectors``, ``streams``, ``bench`` or ``lienthong`` (the front
door); it may use ``schemas``, the contracts below it. See ``docs/architecture.md``.
"""
