"""The event contracts: Avro schemas (``avro/``), topics, and their codec."""
