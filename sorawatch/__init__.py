"""sorawatch: watches the news for OpenAI's Sora and tells people when something real changes."""

__version__ = "0.1.0"
