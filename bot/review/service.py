"""What staff do with conversations, written once for the web app and the CLI.

Every list view, transcript view and export goes through here, so each is recorded in the access log
the same way whichever tool was used (the web app records the signed-in user and address, the CLI
`cli:<os user>`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine

from bot.review import accesslog, exports
from bot.review.filters import Filters
from bot.review.store import ConversationStore, Page
from bot.review.transcript import Transcript

EXPORT_MIMETYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}
EXPORT_FORMATS = tuple(EXPORT_MIMETYPES)


@dataclass(frozen=True)
class Export:
    body: str
    mimetype: str
    filename: str  # suggested download name


def _action(action: str, unmask: bool) -> str:
    """Unmasked views and exports are separate access-log actions so they stand out."""
    return f"{action}_unmasked" if unmask else action


@dataclass
class ReviewService:
    store: ConversationStore
    review_db: Engine
    staff: str
    ip: str | None = None

    def record(self, action: str, sender_id: str | None = None, detail: str = "") -> None:
        accesslog.record(self.review_db, self.staff, action, sender_id, detail, self.ip)

    def list_conversations(self, filters: Filters, page: int, per_page: int) -> Page:
        result = self.store.list_conversations(filters, page, per_page)
        self.record("view_list", detail=f"{filters.describe()}; page {result.page}")
        return result

    def view_transcript(self, transcript: Transcript, unmask: bool = False) -> None:
        """Record that staff read a transcript (with the full phone number when `unmask`)."""
        self.record("show_unmasked" if unmask else "view_conversation", transcript.sender_id,
                    f"conversation {transcript.ref}")

    def export_list(self, filters: Filters, fmt: str, unmask: bool = False) -> Export:
        rows = list(self.store.iter_conversations(filters))
        body = (exports.list_csv(rows, unmask) if fmt == "csv"
                else exports.list_json(rows, filters.describe(), unmask))
        self.record(_action("export_list", unmask), detail=f"{fmt}; {len(rows)} conversations; {filters.describe()}")
        stamp = datetime.now(self.store.tz).strftime("%Y%m%d-%H%M")
        return Export(body, EXPORT_MIMETYPES[fmt], f"conversations-{stamp}.{fmt}")

    def export_transcript(self, transcript: Transcript, fmt: str, unmask: bool = False) -> Export:
        body = (exports.transcript_csv(transcript, unmask) if fmt == "csv"
                else exports.transcript_json(transcript, unmask))
        self.record(_action("export_conversation", unmask), transcript.sender_id,
                    f"{fmt}; conversation {transcript.ref}")
        return Export(body, EXPORT_MIMETYPES[fmt], f"conversation-{transcript.ref}.{fmt}")
