"""Real servers on 127.0.0.1 for the tests and the benches: Redis, SMTP, HTTP.

- ``ports``: ``free_port()``.
- ``redis``: ``RedisServer``, a ``redis-server`` on a free port that a test can SIGKILL
  and restart.
- ``smtp``: ``SmtpServer`` (aiosmtpd) that records each message and answers scripted codes.
- ``http``: ``HttpReceiver``, a webhook receiver that records requests and answers scripts.
- ``feeds``: ``FeedServer``, serving feeds the way real servers do (ETag, gzip, redirects).
- ``alerts``: an ``alert.raised`` record and a way to append it, for the delivery tests.

Only ``tests/`` and ``bench/`` import this package; the service never does. Its modules
import the ``test`` extra's packages (aiosmtpd) at module level, so they need
``pip install -e '.[test]'``; it lives here, installed with the project, so that the bench
scripts import it by name instead of editing ``sys.path`` to reach ``tests/``.
"""
