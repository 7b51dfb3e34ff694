"""mediasrv plugin "chat": durable room chat on the data channel label "chat"."""

from mediasrv_chat.plugin import ChatPlugin
from mediasrv_chat.store import ChatStore, SqliteChatStore, StoredMessage

__all__ = ["ChatPlugin", "ChatStore", "SqliteChatStore", "StoredMessage"]
__version__ = "0.1.0"
