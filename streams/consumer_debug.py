"""Diagnostics: a snapshot of Faust's consumer machinery, logged when a worker is debugged.

``LIENTHONG_DEBUG_CONSUMER=<seconds>`` makes a worker log :func:`consumer_state`
every that many seconds: what is assigned, paused, buffered and active, flow
control, recovery, the agent's stream buffer, and committed offsets against
positions. Used to find issue 11's stall; kept because a frozen worker is
otherwise a black box (both threads idle in ``select``).
"""

from __future__ import annotations

from typing import Any

import faust

from schemas.topics import EVENT_TOPICS


def _tps(tps: Any) -> list[str]:
    return sorted(f"{tp.topic.rsplit('.', 1)[-1]}/{tp.partition}" for tp in (tps or ()))


def consumer_state(app: faust.App) -> dict[str, Any]:
    """Everything that decides whether Faust fetches and delivers a partition's next message."""
    consumer: Any = app.consumer
    out: dict[str, Any] = {}
    try:
        thread = consumer._thread
        client = thread._consumer
        out["assignment"] = _tps(consumer.assignment())
        out["active"] = _tps(consumer._active_partitions)
        out["paused"] = _tps(consumer._paused_partitions)
        out["buffered"] = _tps(consumer._buffered_partitions)
        out["client_paused"] = _tps(client.paused()) if client is not None else None
        out["flow_active"] = consumer.flow_active
        out["can_resume_flow"] = consumer.can_resume_flow.is_set()
        out["flow_control_suspended"] = app.flow_control.is_active() is False
        out["unacked"] = len(consumer._unacked_messages)
        out["generation"] = app.consumer_generation_id
        out["rebalancing"] = app.rebalancing
        recovery: Any = app.tables.recovery  # type: ignore[attr-defined]
        out["in_recovery"] = recovery.in_recovery
        out["recovery_completed"] = recovery.completed.is_set()
        out["recovery_active"] = _tps(recovery.active_tps)
        out["recovery_standby"] = _tps(recovery.standby_tps)
        out["fetcher"] = str(app._fetcher.state)  # type: ignore[attr-defined]
        out["producer_buffer"] = app.producer.buffer.size
        out["committed_vs_read"] = {
            f"{tp.topic.rsplit('.', 1)[-1]}/{tp.partition}": [consumer._committed_offset.get(tp),
                                                              consumer._read_offset.get(tp)]
            for tp in consumer.assignment() if not tp.topic.endswith("changelog")
        }
        if client is not None:
            # aiokafka's own view of each event partition: where it fetches from, and why not
            assignment = client._fetcher._subscriptions.subscription.assignment
            out["client_tp_state"] = {
                f"{tp.topic.rsplit('.', 1)[-1]}/{tp.partition}": {
                    "position": state._position, "valid": state.has_valid_position,
                    "awaiting_reset": state.awaiting_reset, "paused": state.paused,
                    "committed_pending": state._committed_futs and len(state._committed_futs),
                    "highwater": state.highwater,
                }
                for tp, state in (assignment._tp_state.items() if assignment is not None else ())
                if tp.topic in EVENT_TOPICS and state.highwater  # event partitions holding messages
            }
            out["client_records_buffered"] = _tps(client._fetcher._records)
        for agent in app.agents.values():
            channel: Any = agent.channel
            queue = channel.queue
            out[f"queue:{agent.name}"] = {"size": queue.qsize(), "maxsize": queue.maxsize,
                                          "pending_drop": len(queue._pending_pressure_drop_callbacks),
                                          "getters": len(queue._getters)}
            out[f"actors:{agent.name}"] = [str(getattr(a, "state", "?")) for a in agent._actors]
    except Exception as exc:  # noqa: BLE001 - diagnostics must never break the worker
        out["error"] = repr(exc)
    return out
