"""The web: status page, subscribe/confirm/unsubscribe, Atom feed, admin API, ops.

Build it with :func:`sorawatch.web.app.create_app`. It never imports ``watcher``
or ``workers``: jobs are enqueued by dotted name (``sorawatch.jobs``).
"""
