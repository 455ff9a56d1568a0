"""The OpenAPI 3.1 description of a worker's HTTP endpoints, built in code.

Built from the same constants the handlers validate against (wards, flag types,
agencies, KPI names), so the document cannot drift from what the server does;
the integration tests check every live response against it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from schemas.vocabulary import AGENCIES, LISTED_FLAG_STATUSES
from schemas.wards import city_wards
from streams.api.flag_pages import CURSOR_PATTERN, DEFAULT_LIMIT, MAX_LIMIT, ORDERS
from streams.flags import FLAG_TYPES
from streams.kpis import PLAIN_KPIS, RESIDENCE_KINDS

DAY_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def _rate() -> dict[str, Any]:
    return {"type": ["number", "null"], "minimum": 0, "maximum": 1,
            "description": "0..1; null when there is nothing to divide by (no data is not 0 %)."}


def _count() -> dict[str, Any]:
    return {"type": "integer", "minimum": 0}


def _by_kind(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {kind: schema for kind in RESIDENCE_KINDS},
        "required": list(RESIDENCE_KINDS),
    }


def _envelope(key: str, item: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every list response: ``as_of`` (UTC ISO time) and the rows under ``key``."""
    props: dict[str, Any] = {"as_of": {"type": "string", "format": "date-time"}, key: item}
    props.update(extra or {})
    return {"type": "object", "properties": props, "required": ["as_of", key]}


def _components() -> dict[str, Any]:
    kpi_props: dict[str, Any] = {name: _count() for name in PLAIN_KPIS}
    kpi_props.update(
        residence_registrations=_by_kind(_count()),
        residence_online_rate=_by_kind(_rate()),
        procedures_on_time_rate=_rate(),
        procedures_full_online_share=_rate(),
        welfare_cashless_share=_rate(),
        flags_open=_count(),
    )
    nullable_str = {"type": ["string", "null"]}
    return {
        "Error": {
            "type": "object",
            "description": "A refused request: which query field is at fault and why.",
            "properties": {
                "error": {"type": "string"},
                "field": {"type": "string"},
                "reason": {"type": "string"},
            },
            "required": ["error", "field", "reason"],
        },
        "Kpis": {"type": "object", "properties": kpi_props, "required": list(kpi_props)},
        "KpisResponse": _envelope(
            "kpis",
            _ref("Kpis"),
            {"filters": {"type": "object", "properties": {"ward": nullable_str, "day": nullable_str}}},
        ),
        "Counter": {
            "type": "object",
            "properties": {
                "metric": {"type": "string"},
                "ward": {"type": "string", "description": "Ward code; empty for city-level counters."},
                "day": {"type": "string", "pattern": DAY_PATTERN},
                "value": _count(),
            },
            "required": ["metric", "ward", "day", "value"],
        },
        "CountersResponse": _envelope("counters", {"type": "array", "items": _ref("Counter")}),
        "Flag": {
            "type": "object",
            "properties": {
                "flag_id": {"type": "string"},
                "type": {"type": "string", "enum": list(FLAG_TYPES)},
                "status": {"type": "string", "enum": list(LISTED_FLAG_STATUSES)},
                "agency": {"type": "string"},
                "ward_code": {"type": "string"},
                "ward_name": {"type": "string", "description": "The ward's official name; empty for city-wide flags."},
                "subject": {"type": "string", "description": "Pseudonym or dossier id, never a raw ID number."},
                "opened_at": {"type": "string", "format": "date-time", "description": "UTC (event time)."},
                "resolved_at": {"type": ["string", "null"], "format": "date-time"},
                "detail": {"type": "string"},
                "evidence": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["flag_id", "type", "status", "agency", "ward_code", "ward_name", "subject", "opened_at"],
        },
        "FlagsResponse": _envelope(
            "flags",
            {"type": "array", "items": _ref("Flag")},
            {
                "total": {**_count(), "description": "Flags matching the filters, over every page."},
                "by_type": {"type": "object", "additionalProperties": _count(),
                            "description": "Matching flags per type, over every page."},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                "order": {"type": "string", "enum": list(ORDERS)},
                "next_cursor": {"type": ["string", "null"], "pattern": CURSOR_PATTERN,
                                "description": "Pass as `cursor` for the next page; null on the last page."},
                "partitions_elsewhere": {"type": "array", "items": {"type": "integer"},
                                         "description": "Partitions owned by other workers: their flags are "
                                                        "listed by them (roll-ups are merged from every "
                                                        "partition; the KPIs and scorecard count every flag)."},
            },
        ),
        "Agency": {
            "type": "object",
            "properties": {
                "agency": {"type": "string"},
                "events": _count(),
                "last_seen": {"type": "string", "format": "date-time"},
                "silent_for_s": {"type": "number"},
            },
            "required": ["agency", "events", "last_seen", "silent_for_s"],
        },
        "ScorecardRow": {
            "type": "object",
            "description": "One agency's month (ward null: every ward) or ward-month; see docs/flags.md.",
            "properties": {
                "agency": {"type": "string"},
                "ward": nullable_str,
                "month": {"type": "string", "pattern": MONTH_PATTERN},
                "events": _count(),
                "dead_lettered": _count(),
                "dead_letter_share": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                "delay_p50_s": {"type": ["number", "null"], "description": "Median event time → hub time."},
                "delay_p95_s": {"type": ["number", "null"], "description": "95th percentile of the same."},
                "sla_breaches": _count(),
                "flags_open": _count(),
                "silences": _count(),
                "silent_s": {"type": "number"},
            },
            "required": ["agency", "ward", "month", "events", "dead_lettered", "dead_letter_share",
                         "delay_p50_s", "delay_p95_s", "sla_breaches", "flags_open", "silences", "silent_s"],
        },
        "AgenciesResponse": _envelope(
            "agencies",
            {"type": "array", "items": _ref("Agency")},
            {"scorecard": {"type": "array", "items": _ref("ScorecardRow")},
             "scorecard_wards": {"type": "array", "items": _ref("ScorecardRow")}},
        ),
        "Ward": {
            "type": "object",
            "properties": {
                "ward": {"type": "string"},
                "name": {"type": "string"},
                "events": _count(),
                "id_cards_issued": _count(),
                "checkins_by_id_card": _count(),
                "procedures_submitted": _count(),
                "flags_open": _count(),
            },
            "required": ["ward", "name", "events", "id_cards_issued", "checkins_by_id_card",
                         "procedures_submitted", "flags_open"],
        },
        "WardsResponse": _envelope(
            "wards", {"type": "array", "items": _ref("Ward")}, {"wards_total": _count()}
        ),
        "ThroughputResponse": _envelope(
            "minutes",
            {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "minute": {"type": "string", "format": "date-time", "description": "Start of the minute, UTC."},
                        "by_agency": {"type": "object", "additionalProperties": _count()},
                    },
                    "required": ["minute", "by_agency"],
                },
            },
            {"agencies": {"type": "array", "items": {"type": "string"}}},
        ),
        "Health": {
            "type": "object",
            "properties": {
                "status": {"type": "string", "enum": ["ok", "unhealthy"]},
                "problems": {"type": "array", "items": {"type": "string"},
                             "description": "Why the worker cannot do its job (empty when ok): agent crashed, "
                                            "recovery unfinished, or lag without progress"},
                "worker": {"type": "string"},
                "partitions_owned": {"type": "array", "items": {"type": "integer"}},
                "partitions_known": _count(),
                "messages": _count(),
                "groups": {"type": "integer", "minimum": 0,
                           "description": "Group commits: state changes written for the messages "
                                          "(each covers a run of one topic-partition's messages)"},
                "first_message_at": {"type": ["string", "null"], "format": "date-time",
                                     "description": "When this worker processed its first message (ISO-8601 UTC, ms)"},
                "last_message_at": {"type": ["string", "null"], "format": "date-time",
                                    "description": "When it processed its latest message (ISO-8601 UTC, ms)"},
                "first_message_cpu_s": {"type": ["number", "null"],
                                        "description": "CPU seconds the worker process had used at its first message"},
                "last_message_cpu_s": {"type": ["number", "null"],
                                       "description": "CPU seconds the worker process had used at its latest message"},
                "consumer_lag": _count(),
                "stream_listeners": _count(),
            },
            "required": ["status", "worker", "partitions_owned", "partitions_known", "messages"],
        },
    }


def _healthz() -> dict[str, Any]:
    operation = _get("Health", "Liveness and what this worker owns; 503 with the problems when it cannot do "
                     "its job (LIENTHONG_HEALTH_STALL_S, LIENTHONG_HEALTH_RECOVERY_S).",
                     _json("Health", _ref("Health")), tag="operations")
    operation["get"]["responses"]["503"] = _json("Unhealthy: `problems` says why.", _ref("Health"))
    return operation


def _get(summary: str, description: str, ok: dict[str, Any], params: list[dict[str, Any]] | None = None,
         tag: str = "api") -> dict[str, Any]:
    responses: dict[str, Any] = {"200": ok}
    if params:
        responses["400"] = _json("A query filter is invalid.", _ref("Error"))
    return {"get": {"summary": summary, "description": description, "tags": [tag],
                    "parameters": params or [], "responses": responses}}


@cache
def openapi_document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document (built once per process)."""
    wards = sorted(city_wards())
    ward = _param("ward", "Official ward code of the city (5 digits, province 79).", {"type": "string", "enum": wards})
    day = _param("day", "Local day in Asia/Ho_Chi_Minh, YYYY-MM-DD.",
                 {"type": "string", "format": "date", "pattern": DAY_PATTERN})
    metric = _param("metric", "Counter metric name, e.g. id_cards_issued.", {"type": "string", "minLength": 1})
    status = _param("status", "Flag status (case-insensitive).", {"type": "string", "enum": list(LISTED_FLAG_STATUSES)})
    ftype = _param("type", "Flag type (case-insensitive).", {"type": "string", "enum": list(FLAG_TYPES)})
    agency = _param("agency", "Agency that failed to share (case-insensitive).",
                    {"type": "string", "enum": list(AGENCIES)})
    month = _param("month", "Local month in Asia/Ho_Chi_Minh, YYYY-MM.", {"type": "string", "pattern": MONTH_PATTERN})
    wards_param = _param("wards", "`all` adds the scorecard per ward.", {"type": "string", "enum": ["all", "none"]})
    limit = _param("limit", "How many wards to return, busiest first.",
                   {"type": "integer", "minimum": 1, "maximum": len(wards)})
    flag_limit = _param("limit", f"Flags per page (default {DEFAULT_LIMIT}).",
                        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT})
    cursor = _param("cursor", "Where the page starts: `next_cursor` of the previous page, unchanged.",
                    {"type": "string", "pattern": CURSOR_PATTERN})
    order = _param("order", "asc: oldest first (default); desc: newest first.",
                   {"type": "string", "enum": list(ORDERS), "default": "asc"})
    paths = {
        "/": {"get": {"summary": "Dashboard", "tags": ["dashboard"],
                      "description": "The city dashboard page (HTML; assets under /static/).",
                      "responses": {"200": {"description": "HTML page",
                                            "content": {"text/html": {"schema": {"type": "string"}}}}}}},
        "/favicon.ico": {"get": {"summary": "Icon", "tags": ["dashboard"],
                                 "description": "The dashboard's icon (32 px).",
                                 "responses": {"200": {"description": "ICO image",
                                                       "content": {"image/x-icon": {"schema": {"type": "string"}}}}}}},
        "/api/kpis": _get("City KPIs", "The KPIs of docs/product.md for the city, a ward and/or a day.",
                          _json("KPIs", _ref("KpisResponse")), [ward, day]),
        "/api/counters": _get("Counters", "Raw counters (metric × ward × local day), filtered.",
                              _json("Counters", _ref("CountersResponse")), [metric, ward, day]),
        "/api/flags": _get("Flags", "Data-sharing failures, open and resolved, one page at a time in a "
                           "stable order (opened_at, then flag_id); times are ISO 8601 UTC. The flags of "
                           "the partitions this worker owns and every roll-up (`partitions_elsewhere`).",
                           _json("Flags", _ref("FlagsResponse")), [status, ftype, agency, ward, flag_limit, cursor, order]),
        "/api/flags/subjects": {"get": {
            "summary": "Flags behind a roll-up", "tags": ["api"],
            "description": "The per-citizen SYNC_MISSING flags behind a roll-up (one flag per agency, ward "
                           "and day where social insurance sent nothing; see docs/flags.md): count over every "
                           "partition, subjects of the partitions this worker owns.",
            "parameters": [{"name": "flag_id", "in": "query", "required": True,
                            "schema": {"type": "string", "minLength": 1},
                            "description": "The roll-up's flag_id, URL-encoded."}],
            "responses": {
                "200": _json("The roll-up and its subjects", {
                    "type": "object",
                    "properties": {"as_of": {"type": "string", "format": "date-time"}, "flag": _ref("Flag"),
                                   "count": _count(), "subjects": {"type": "array", "items": _ref("Flag")},
                                   "partitions_elsewhere": {"type": "array", "items": {"type": "integer"},
                                                            "description": "Partitions owned by other workers: "
                                                                           "their subjects are listed by them."}},
                    "required": ["as_of", "flag", "count", "subjects", "partitions_elsewhere"]}),
                "400": _json("flag_id is missing.", _ref("Error")),
                "404": _json("No such flag, or not a roll-up.", _ref("Error")),
            }}},
        "/api/agencies": _get(
            "Agencies",
            "Each agency's events and when it was last heard from, and its scorecard per month "
            "(`scorecard`) and, with `ward` or `wards=all`, per ward and month (`scorecard_wards`).",
            _json("Agencies", _ref("AgenciesResponse")), [month, ward, agency, wards_param]),
        "/api/wards": _get("Wards", "Per-ward totals with ward names, busiest wards first.",
                           _json("Wards", _ref("WardsResponse")), [day, limit]),
        "/api/throughput": _get(
            "Throughput", "Events accepted by this worker per wall-clock minute and agency (last hour).",
            _json("Throughput", _ref("ThroughputResponse"))),
        "/api/stream": {"get": {
            "summary": "Live stream", "tags": ["api"],
            "description": (
                "Server-sent events. `event: kpis` (data: KpisResponse) on connect and whenever the KPIs "
                "change (checked every second); `event: counts` (data: {\"at\": ISO UTC time, \"by_agency\": {...}}) "
                "events accepted since the last one; `event: flag` (data: Flag, status OPEN, RESOLVED or WITHDRAWN) "
                "as flags open, resolve or are withdrawn; "
                "`: keep-alive` comments while idle."),
            "responses": {"200": {"description": "An endless event stream",
                                  "content": {"text/event-stream": {"schema": {"type": "string"}}}}}}},
        "/metrics": {"get": {
            "summary": "Prometheus metrics", "tags": ["operations"],
            "description": "Prometheus text exposition format (lienthong_* series).",
            "responses": {"200": {"description": "Metrics",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/healthz": _healthz(),
        "/openapi.json": {"get": {
            "summary": "This document", "tags": ["operations"],
            "responses": {"200": _json("OpenAPI 3.1 document", {"type": "object"})}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "lienthong worker",
            "version": "0.1.0",
            "description": "City aggregates, data-sharing flags, live stream and metrics of a lienthong "
                           "worker. Any worker answers for any ward.",
        },
        "paths": paths,
        "components": {"schemas": _components()},
    }
