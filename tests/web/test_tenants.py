"""Two deployments on one Redis (two ``redis.prefix``): each one's confirmation mail
is queued on its own queues and sent by its own workers, through its own SMTP server."""

from __future__ import annotations

import dataclasses

from fastapi.testclient import TestClient
from redis import Redis

from sorawatch.settings import Settings, SmtpSettings
from sorawatch.testing.smtp import SmtpServer
from sorawatch.web.app import create_app
from sorawatch.workers import runtime, worker

FORM = {"lang": "en", "topics": ["status"], "kinds": ["change"]}


def _deployment(settings: Settings, prefix: str, smtp_port: int) -> Settings:
    return dataclasses.replace(
        settings,
        redis=dataclasses.replace(settings.redis, prefix=prefix),
        smtp=SmtpSettings(host="127.0.0.1", port=smtp_port, timeout=5),
    )


def test_two_prefixes_on_one_redis_each_send_their_own_mail(
    settings: Settings, redis: Redis
) -> None:
    with SmtpServer() as smtp_a, SmtpServer() as smtp_b:
        a = _deployment(settings, "sw", smtp_a.port)
        b = _deployment(settings, "tenantb", smtp_b.port)
        with (
            TestClient(create_app(a, redis)) as web_a,
            TestClient(create_app(b, redis)) as web_b,
        ):
            assert web_a.post("/subscribe", data={**FORM, "email": "a@example.com"}).is_success
            assert web_b.post("/subscribe", data={**FORM, "email": "b@example.com"}).is_success
        # RQ's own key names: each deployment's queue carries its prefix.
        assert redis.llen("rq:queue:tenantb.email") == 1
        assert redis.llen("rq:queue:sw.email") == 1
        try:
            # Tenant B's workers first: they must take B's job only, not A's.
            worker.burst(b, redis)
            assert [r for m in smtp_b.messages for r in m.recipients] == ["b@example.com"]
            assert smtp_a.messages == []
            assert redis.llen("rq:queue:sw.email") == 1
            worker.burst(a, redis)
        finally:
            runtime.reset()
        assert [r for m in smtp_a.messages for r in m.recipients] == ["a@example.com"]
        assert [r for m in smtp_b.messages for r in m.recipients] == ["b@example.com"]
