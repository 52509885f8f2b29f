"""The domain events of the environments capability (subject kind ``environment``)."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    ENVIRONMENT_CREATION_STARTED = "EnvironmentCreationStarted"
    ENVIRONMENT_CREATED = "EnvironmentCreated"
    ENVIRONMENT_CREATION_FAILED = "EnvironmentCreationFailed"
    ENVIRONMENT_DELETED = "EnvironmentDeleted"
    DEPENDENCIES_ADDED = "DependenciesAdded"
    DEPENDENCIES_UPDATED = "DependenciesUpdated"
    DEPENDENCIES_REMOVED = "DependenciesRemoved"
    ENVIRONMENT_SYNCED = "EnvironmentSynced"
    ENVIRONMENT_CLEANUP_COMPLETED = "EnvironmentCleanupCompleted"
