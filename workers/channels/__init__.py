"""The delivery channels: one module each (``email``, ``webhook``), found by name.

``sorawatch.jobs.CHANNELS`` lists the channels (name, queue, job), so the core can
list them without importing ``workers``; the channel named ``x`` is ``CHANNEL`` in
``sorawatch.workers.channels.x``. A new channel is therefore one module here plus one line in
that list, or a ``register`` call where only some processes should have it (the tests'
``log`` channel). The fan-out, the retry and the worker's queues all go through
``registered()`` and ``get()``.
"""

from __future__ import annotations

import importlib

from sorawatch import jobs
from sorawatch.workers.channels.base import Batch, Channel, Recipients

__all__ = ["Batch", "Channel", "Recipients", "get", "register", "registered", "unregister"]

_loaded: dict[str, Channel] = {}


def _load(job: jobs.ChannelJob) -> Channel:
    module = importlib.import_module(f"{__name__}.{job.name}")
    channel = getattr(module, "CHANNEL", None)
    if not isinstance(channel, Channel) or channel.job != job:
        raise TypeError(f"{module.__name__}.CHANNEL: not the Channel of {job}")
    return channel


def get(name: str) -> Channel:
    """The registered channel ``name``; KeyError when there is none."""
    job = jobs.CHANNELS[name]
    channel = _loaded.get(name)
    if channel is None or channel.job != job:
        channel = _loaded[name] = _load(job)
    return channel


def registered() -> list[Channel]:
    """Every registered channel, in delivery order."""
    return [get(name) for name in jobs.CHANNELS]


def register(channel: Channel) -> None:
    """Add (or replace) ``channel`` in this process, in the core's list too."""
    jobs.register(channel.job)
    _loaded[channel.name] = channel


def unregister(name: str) -> None:
    """Remove a channel added by ``register``."""
    jobs.unregister(name)
    _loaded.pop(name, None)
