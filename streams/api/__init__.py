"""The worker's HTTP face: JSON API, dashboard, server-sent events, Prometheus metrics, OpenAPI.

Everything here reads a running worker through :class:`streams.api.worker_view.WorkerView`
(a small read-only protocol) and never imports the Faust shell (``streams.app``), so the
API can be served and tested over any object with that shape.
"""
