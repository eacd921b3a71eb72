"""Every word a person reads: the Jinja2 templates of mail and web pages, and their labels.

No code: this file makes the folder the package ``sorawatch.templates``, so the templates
are found where the package was imported from, the checkout or an installed wheel
(``sorawatch.render.TEMPLATES_DIR``).
"""
