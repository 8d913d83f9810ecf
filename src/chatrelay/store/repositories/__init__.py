"""User-scoped data access, one module per aggregate."""

from chatrelay.store.repositories.attachments import AttachmentRepository, UploadClaims
from chatrelay.store.repositories.conversations import ConversationRepository
from chatrelay.store.repositories.feedback import FeedbackRepository
from chatrelay.store.repositories.leases import LeaseRepository
from chatrelay.store.repositories.messages import MessageRepository
from chatrelay.store.repositories.tasks import TaskRepository, TaskStatus

__all__ = [
    "AttachmentRepository",
    "ConversationRepository",
    "FeedbackRepository",
    "LeaseRepository",
    "MessageRepository",
    "TaskRepository",
    "TaskStatus",
    "UploadClaims",
]
