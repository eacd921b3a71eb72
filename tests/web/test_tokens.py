"""Link tokens: the address is not readable in them, and they can be revoked."""

from __future__ import annotations

import base64
import json

from fastapi.testclient import TestClient

from sorawatch.commands import subscriptions
from sorawatch.events import EventLog
from sorawatch.projections import subscribers
from sorawatch.tokens import Tokens


def _payload(token: str) -> str:
    head = token.split(".")[0]
    return base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)).decode("utf-8", "replace")


def test_the_address_is_not_readable_in_a_token(tokens: Tokens) -> None:
    for purpose in ("confirm", "unsubscribe", "preferences"):
        token = tokens.sign(purpose, "secret.reader@example.com")
        payload = json.loads(_payload(token))
        assert set(payload) == {"a", "t"}
        assert "secret.reader" not in token
        assert "secret.reader" not in _payload(token)
        assert tokens.verify(purpose, token) == "secret.reader@example.com"
        # Two links for one address do not even look alike.
        assert tokens.sign(purpose, "secret.reader@example.com") != token


def test_revoked_links_are_refused_and_new_ones_work(
    client: TestClient, log: EventLog, tokens: Tokens, admin: dict[str, str]
) -> None:
    subscriptions.request(log, "r@example.com", "en", None, None, confirmed=True)
    old_prefs = tokens.sign("preferences", "r@example.com")
    old_unsub = tokens.sign("unsubscribe", "r@example.com")
    assert client.get(f"/preferences/{old_prefs}?lang=en").status_code == 200
    revoked = client.post("/api/subscribers/R@example.com/revoke-tokens", headers=admin)
    assert revoked.json() == {"email": "r@example.com", "revoked": True}
    for path in (f"/preferences/{old_prefs}", f"/unsubscribe/{old_unsub}"):
        page = client.get(path + "?lang=en")
        assert page.status_code == 400
        assert "This link does not work" in page.text
    assert client.post(f"/unsubscribe/{old_unsub}?lang=en").status_code == 400
    sub = subscribers.get(log.redis, log.keys, "r@example.com")
    assert sub is not None
    assert sub.status == "confirmed"
    assert sub.tokens_after
    # A link signed after the revocation (the next mail's) works.
    assert client.get(f"/preferences/{tokens.sign('preferences', 'r@example.com')}").is_success
    nobody = client.post("/api/subscribers/nobody@example.com/revoke-tokens", headers=admin)
    assert nobody.status_code == 404
