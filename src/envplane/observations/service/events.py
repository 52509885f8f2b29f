"""The domain events of the observations capability (subject kind ``observation``).

Single observations are not evented (a plugin may send thousands a second; they are rows of
their own and counted in the metrics): what asks the engine to act differently is.
"""

from __future__ import annotations

from enum import StrEnum

OBSERVATION = "observation"


class EventType(StrEnum):
    ACTION_DECIDED = "ActionDecided"  # a retry (with resources) or a failure
    RECOMMENDATION_CHANGED = "RecommendationChanged"  # a process's next request moved by > 20 %
    PIPELINE_CHANGED = "PipelineChanged"  # its policy or memory cap
    OBSERVATIONS_FORGOTTEN = "ObservationsForgotten"  # a pipeline's (or a process's) rows and evidence dropped
