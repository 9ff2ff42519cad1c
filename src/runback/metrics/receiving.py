"""Receiver families: how long ``runback receive`` takes to acknowledge a callback."""

from __future__ import annotations

from prometheus_client import Histogram

ACK_SECONDS = Histogram(
    "runback_receiver_ack_duration_seconds",
    "Time from a callback's request to its 200, the event committed.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def acknowledged(seconds: float) -> None:
    """A callback was committed and answered ``200``, ``seconds`` after its request came."""
    ACK_SECONDS.observe(seconds)
