"""ObservationService: what every face of the observations capability calls.

An observation is checked, decided (``decisions.Decider``, on the event loop: it is fast and
the evidence is in memory), stored with its action in one commit, then answered. A batch (a
stream's observations that arrived together, an import) is decided in order and stored in one
transaction. Nothing is answered before it is stored, so kill -9 loses no acknowledged
observation; if the commit fails, the evidence of the processes it touched is read back from
the database, so the failed batch leaves no trace in the decisions either.

A sender's ``event_id`` makes a retry safe: the same event is stored once and answered with
the stored action (the last ``RECENT`` event ids are known in memory; the unique column guards
older ones).

Audit and events: the observation rows are the record of each call (as a pool's calls are
counted, not audited); what asks the engine to act differently — a retry, a failure, a
recommendation that moved by more than ``MOVED`` — is an event (``ActionDecided``,
``RecommendationChanged``) and the retries and failures are audited (``observation.decide``),
as is every change of a pipeline's policy or cap (``observation.pipeline``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from prometheus_client import Counter, Histogram

from envplane.core.audit import OpStatus
from envplane.core.capability import Core, Tx
from envplane.core.pagination import Page, make_page, resolve_window
from envplane.core.subject import Subject
from envplane.errors import InvalidArgument, NotFound
from envplane.observations.service import evaluation, exports, queries, report
from envplane.observations.service.decisions import Decider, Decision, Observation, capped, check
from envplane.observations.service.events import OBSERVATION, EventType
from envplane.observations.service.replay import Policy
from envplane.observations.service.traces import Task

logger = logging.getLogger("envplane.observations")
RECENT = 100_000  # event ids remembered for duplicates without a query
MOVED = 0.2  # a recommendation that moves this much (either way) is an event
NOTABLE = ("RETRY", "RETRY_WITH_RESOURCES", "FAIL")
DEFAULT_PIPELINE = "default"
Fresh = tuple[int, Observation, Decision, str]  # (its slot in the call's answers, it, its decision, action id)


@dataclass(frozen=True)
class Outcome:
    """The answer to one observation: its row, its decision, whether it was a duplicate."""

    observation_id: int
    decision: Decision
    action_id: str
    event_id: str
    duplicate: bool = False
    error: str = ""  # a refused observation of a batch (nothing stored)
    key: tuple[str, str] = ("", "")  # (pipeline, process): what forgetting it drops


@dataclass(frozen=True)
class ProcessFigures:
    """What ``stats`` says of one process: the stored counts and the evidence's peaks."""

    counts: queries.Counts
    peak_p50: int
    peak_p95: int
    peak_max: int
    recommended: int


def subject(observation: Observation) -> Subject:
    """``observation/<pipeline>/<process>/<task>``; workflow = pipeline, node = process."""
    task = f"/{observation.task_id}" if str(observation.task_id) else ""
    return Subject(
        OBSERVATION, f"{observation.pipeline}/{observation.process}{task}", observation.pipeline, observation.process
    )


class ObservationService:
    def __init__(self, core: Core) -> None:
        self.core = core
        settings = core.settings
        self._default_policy = evaluation.policy_named(settings.observations_policy)
        self._default_cap = settings.observations_memory_cap
        self._pipelines: dict[str, queries.PipelineSettings] = {}
        self.decider = Decider(policy_for=self.policy_for, cap_for=self.cap_for)
        self._recent: OrderedDict[str, Outcome] = OrderedDict()
        self._pending: dict[str, asyncio.Future[Outcome]] = {}
        self._recommended: dict[tuple[str, str], int] = {}
        self._writes: list[tuple[list[Fresh], asyncio.Future[list[int | queries.Stored]]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._next_id = 1  # the next observation row's id (read at start: the daemon is the one writer)
        core.subject_kinds.add(OBSERVATION)
        core.event_types.update(EventType)
        registry = core.metrics.registry
        self.observed = Counter(
            "envplane_observations",
            "Observations decided, by source and action.",
            ["source", "kind"],
            registry=registry,
        )
        self.decide_seconds = Histogram(
            "envplane_observation_decision_seconds",
            "Time to decide one observation (the policy over the evidence).",
            buckets=(1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1),
            registry=registry,
        )

    # -- settings per pipeline --------------------------------------------------------------

    def policy_for(self, pipeline: str) -> Policy:
        chosen = self._pipelines.get(pipeline)
        return evaluation.policy_named(chosen.policy) if chosen and chosen.policy else self._default_policy

    def cap_for(self, pipeline: str) -> int:
        chosen = self._pipelines.get(pipeline)
        return chosen.memory_cap if chosen and chosen.memory_cap else self._default_cap

    # -- start: the evidence back from the database -------------------------------------------

    async def start(self) -> int:
        """Rebuild the evidence from the completed rows (older event ids are found by the
        unique column when they come again)."""
        self._pipelines = {p.name: p for p in await self.core.store.run(queries.pipelines)}
        self._next_id = await self.core.store.run(queries.max_id) + 1
        completed = await self.core.store.run(lambda db: list(queries.completed(db)))
        for observation in completed:
            self.decider.learn(observation)
        return len(completed)

    async def _reload(self, keys: set[tuple[str, str]]) -> None:
        """After a failed commit: the evidence of these processes as the database has it."""
        for pipeline, process in keys:
            rows: list[Observation] = await self.core.store.run(
                lambda db, p=pipeline, q=process: list(queries.completed(db, p, q))  # type: ignore[misc]
            )
            self.decider.forget(pipeline, process)
            for observation in rows:
                self.decider.learn(observation)

    # -- observe ----------------------------------------------------------------------------------

    async def observe(self, observation: Observation) -> Outcome:
        """One observation: checked (InvalidArgument names the problem), decided, stored."""
        outcome = (await self._observe([observation], strict=True))[0]
        return outcome

    async def observe_many(self, observations: Sequence[Observation]) -> list[Outcome]:
        """A batch, decided in order and stored in one transaction; a bad observation is an
        outcome with ``error`` (the others go on)."""
        return await self._observe(observations, strict=False)

    async def _observe(self, observations: Sequence[Observation], *, strict: bool) -> list[Outcome]:
        outcomes: list[Outcome | asyncio.Future[Outcome] | None] = []
        fresh: list[Fresh] = []
        mine: list[str] = []
        for observation in observations:
            observation = _normalized(observation)
            try:
                check(observation)
            except InvalidArgument as exc:
                if strict:
                    raise
                outcomes.append(Outcome(0, Decision("NONE", ""), "", observation.event_id, error=exc.message))
                continue
            known = self._seen(observation.event_id)
            if known is not None:
                outcomes.append(known)
                continue
            started = time.perf_counter()
            decision = self.decider.decide(observation, checked=True)
            self.decide_seconds.observe(time.perf_counter() - started)
            action_id = str(uuid.uuid4())
            if observation.event_id:
                self._pending[observation.event_id] = asyncio.get_running_loop().create_future()
                mine.append(observation.event_id)
            fresh.append((len(outcomes), observation, decision, action_id))
            outcomes.append(None)
        try:
            ids = await self._write(fresh) if fresh else []
        except BaseException as exc:
            for event_id in mine:
                future = self._pending.pop(event_id)
                if not future.done():
                    future.set_exception(exc)
                    future.exception()  # retrieved: a duplicate may not be waiting on it
            await asyncio.shield(self._reload({(o.pipeline, o.process) for _, o, _, _ in fresh}))
            raise
        again: set[tuple[str, str]] = set()
        for (slot, observation, decision, action_id), row in zip(fresh, ids, strict=True):
            key = (observation.pipeline, observation.process)
            if isinstance(row, queries.Stored):  # stored long ago: its action, and the evidence without this
                outcome = Outcome(row.id, row.decision, row.action_id, observation.event_id, duplicate=True, key=key)
                again.add(key)
            else:
                outcome = Outcome(row, decision, action_id, observation.event_id, key=key)
            outcomes[slot] = outcome
            self.observed.labels(observation.source or "grpc", decision.kind).inc()
            if observation.event_id:
                self._remember(observation.event_id, outcome)
                self._pending.pop(observation.event_id).set_result(outcome)
        if again:
            await self._reload(again)
        done: list[Outcome] = []
        for item in outcomes:
            if isinstance(item, asyncio.Future):
                item = replace(await item, duplicate=True)
            assert item is not None
            done.append(item)
        return done

    def _seen(self, event_id: str) -> Outcome | asyncio.Future[Outcome] | None:
        if not event_id:
            return None
        if event_id in self._pending:
            return self._pending[event_id]
        outcome = self._recent.get(event_id)
        return replace(outcome, duplicate=True) if outcome else None

    def _remember(self, event_id: str, outcome: Outcome) -> None:
        self._recent[event_id] = outcome
        while len(self._recent) > RECENT:
            self._recent.popitem(last=False)

    async def _write(self, fresh: list[Fresh]) -> list[int | queries.Stored]:
        """Store ``fresh`` together with what other callers are storing now: the calls that
        arrive while a write is in flight go in the next one, as one statement (unary calls at
        a high rate cost what a stream costs)."""
        future: asyncio.Future[list[int | queries.Stored]] = asyncio.get_running_loop().create_future()
        self._writes.append((fresh, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._drain_writes())
        return await future

    async def _drain_writes(self) -> None:
        while self._writes:
            batch, self._writes = self._writes, []
            combined = [item for fresh, _ in batch for item in fresh]
            try:
                rows = await asyncio.shield(self.core.commit(lambda tx, c=combined: self._store(tx, c)))  # type: ignore[misc]
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            at = 0
            for fresh, future in batch:
                if not future.done():
                    future.set_result(rows[at : at + len(fresh)])
                at += len(fresh)

    def _store(self, tx: Tx, fresh: list[Fresh]) -> list[int | queries.Stored]:
        """Insert the rows (their ids, in order); an event id older than the ones remembered
        is not stored again: its stored row answers. The ids are the daemon's own (it is the
        one writer), so the insert needs no RETURNING and a conflict on ``event_id`` is skipped
        by the database, not raised: only then are the rows looked up."""
        now = time.time()
        first = self._next_id
        rows = []
        for offset, (_, observation, decision, action_id) in enumerate(fresh):
            rows.append({"id": first + offset, **queries.row_values(observation, decision, action_id, now)})
        self._next_id = first + len(rows)  # a re-run of this batch (a failed group) skips these
        inserted = queries.insert_new(tx.db, rows)
        older: dict[str, queries.Stored] = {}
        if inserted != len(rows):
            found = queries.by_event_ids(tx.db, [o.event_id for _, o, _, _ in fresh if o.event_id])
            mine = {row["id"] for row in rows}
            older = {event_id: row for event_id, row in found.items() if row.id not in mine}
        result: list[int | queries.Stored] = []
        for row, (_, observation, decision, action_id) in zip(rows, fresh, strict=True):
            if observation.event_id in older:
                result.append(older[observation.event_id])
                continue
            self._evented(tx, observation, decision, action_id, row["id"], now)
            result.append(row["id"])
        return result

    def _evented(
        self, tx: Tx, observation: Observation, decision: Decision, action_id: str, row_id: int, now: float
    ) -> None:
        about = subject(observation)
        payload = {"observation_id": row_id, "action_id": action_id, **decision.details()}
        if decision.kind in NOTABLE:
            tx.event(EventType.ACTION_DECIDED, about, payload)
            tx.record(about, "observation.decide", payload, started_at=now, status=OpStatus.SUCCEEDED)
        elif decision.kind == "RIGHT_SIZE":
            key = (observation.pipeline, observation.process)
            last = self._recommended.get(key)
            if last is None or abs(decision.memory_bytes - last) > MOVED * last:
                self._recommended[key] = decision.memory_bytes
                tx.event(EventType.RECOMMENDATION_CHANGED, about, {**payload, "previous_bytes": last or 0})

    # -- queries -----------------------------------------------------------------------------------

    async def list_observations(self, where: queries.Filter, page_size: int, page_token: str) -> Page[queries.Stored]:
        settings = self.core.settings
        offset, limit = resolve_window(
            page_size, page_token, default=settings.default_page_size, maximum=settings.max_page_size
        )
        items, total = await self.core.store.run(lambda db: queries.page(db, where, offset, limit))
        return make_page(items, total, offset, limit)

    async def stats(self, pipeline: str, process: str) -> list[ProcessFigures]:
        """Per process: the counts, the completed peaks' quantiles, the recommended memory."""
        found = await self.core.store.run(lambda db: queries.counts(db, pipeline, process))
        result = []
        for counts in found:
            known = self.decider.known(counts.pipeline, counts.process)
            p50, p95 = (known.quantile(q) if len(known) else 0 for q in (0.5, 0.95))
            first = self._first(counts.pipeline, counts.process)
            result.append(ProcessFigures(counts, p50, p95, known.maximum, first))
        return result

    def _first(self, pipeline: str, process: str) -> int:
        known = self.decider.known(pipeline, process)
        if not len(known):
            return 0
        probe = Task(pipeline, "", "", process, 1, "SUBMITTED", None, 0, 0, 0.0, 0.0, 0.0, 0)
        return capped(int(self.policy_for(pipeline).first(probe, known)), self.cap_for(pipeline))

    async def recommendations(self, pipeline: str, max_retries: int = 3) -> exports.Profile:
        pipeline = pipeline or DEFAULT_PIPELINE
        counts = await self.core.store.run(lambda db: queries.counts(db, pipeline))
        if not counts:
            raise NotFound(f"no observations of pipeline {pipeline!r}")
        policy, cap = self.policy_for(pipeline), self.cap_for(pipeline)
        recs = []
        for c in counts:
            known = self.decider.known(pipeline, c.process)
            if not len(known):
                continue
            first = self._first(pipeline, c.process)
            probe = Task(pipeline, "", "", c.process, 1, "FAILED", 137, 0, 0, 0.0, 0.0, 0.0, 0)
            sizes = [first]
            while len(sizes) <= max_retries and not (cap and sizes[-1] >= cap):
                grown = max(int(policy.retry(probe, known, sizes)), sizes[-1] + 1)
                sizes.append(capped(grown, cap))
            why = f"{policy.name} over {len(known)} completed task(s)"
            recs.append(exports.Recommendation(c.process, first, sizes[1:], len(known), known.maximum, why))
        limits = exports.Limits(max_retries=max_retries, memory_bytes=cap)
        return exports.Profile(pipeline, policy.name, sum(c.observations for c in counts), limits, recs)

    async def export(self, pipeline: str, format_: str, limits: exports.Limits) -> str:
        limits.check()
        if format_ not in exports.FORMATS:  # before any work
            raise InvalidArgument(f"format {format_!r} is not one of {', '.join(exports.FORMATS)}")
        profile = await self.recommendations(pipeline, limits.max_retries)
        memory = limits.memory_bytes or profile.limits.memory_bytes
        chosen = exports.Limits(limits.max_retries, memory, limits.cpus, limits.time_ms)
        return exports.render(replace(profile, limits=chosen), format_)

    async def report(self, pipeline: str) -> str:
        rows = await self.core.store.run(lambda db: queries.all_of(db, pipeline))
        if not rows:
            raise NotFound(f"no observations of pipeline {pipeline!r}" if pipeline else "no observations yet")
        names = sorted({row.observation.pipeline for row in rows})
        profiles = [await self.recommendations(name) for name in names]
        configs = {p.pipeline: exports.nextflow_config(p) for p in profiles}
        return report.render(rows, profiles, configs, {name: self.policy_for(name) for name in names})

    # -- forgetting ---------------------------------------------------------------------------------

    async def forget(self, pipeline: str, process: str = "") -> tuple[int, int]:
        """Delete a pipeline's observations (or one process's) and drop their evidence, so the
        next decisions start afresh; audited. (rows deleted, processes dropped)"""
        if not pipeline:
            raise InvalidArgument("name the pipeline whose observations to forget")
        about = Subject(OBSERVATION, f"{pipeline}/{process}" if process else pipeline, pipeline, process)

        def write(tx: Tx) -> list[tuple[str, int]]:
            found = queries.delete(tx.db, pipeline, process)
            if found:
                details = {"deleted": sum(n for _, n in found), "processes": [name for name, _ in found]}
                tx.record(about, "observation.forget", details, started_at=time.time(), status=OpStatus.SUCCEEDED)
                tx.event(EventType.OBSERVATIONS_FORGOTTEN, about, details)
            return found

        found = await self.core.commit(write)
        if not found:
            what = f"process {process!r} of pipeline {pipeline!r}" if process else f"pipeline {pipeline!r}"
            raise NotFound(f"no observations of {what}")
        for name, _ in found:
            self.decider.forget(pipeline, name)
            self._recommended.pop((pipeline, name), None)
        gone = {(pipeline, name) for name, _ in found}
        for event_id in [e for e, outcome in self._recent.items() if outcome.key in gone]:
            del self._recent[event_id]
        return sum(n for _, n in found), len(found)

    # -- pipelines ---------------------------------------------------------------------------------

    async def pipelines(self) -> list[tuple[queries.PipelineSettings, list[queries.Counts]]]:
        counts = await self.core.store.run(queries.counts)
        names = sorted({c.pipeline for c in counts} | set(self._pipelines))
        return [(self._settings_of(name), [c for c in counts if c.pipeline == name]) for name in names]

    def _settings_of(self, name: str) -> queries.PipelineSettings:
        stored = self._pipelines.get(name)
        return queries.PipelineSettings(name, self.policy_for(name).name, stored.memory_cap if stored else 0)

    async def set_pipeline(self, name: str, policy: str | None, memory_cap: int | None) -> queries.PipelineSettings:
        name = name.strip()
        if not name or len(name) > 128:
            raise InvalidArgument("a pipeline's name is 1 to 128 characters")
        if policy:
            evaluation.policy_named(policy)  # InvalidArgument listing the policies
        if memory_cap is not None and memory_cap < 0:
            raise InvalidArgument(f"memory_cap_bytes must be >= 0 (0: the daemon's cap), got {memory_cap}")
        before = self._pipelines.get(name) or queries.PipelineSettings(name, "", 0)
        after = queries.PipelineSettings(
            name, policy or before.policy, before.memory_cap if memory_cap is None else memory_cap
        )
        about = Subject(OBSERVATION, name, name)
        details = {"policy": after.policy or self._default_policy.name, "memory_cap_bytes": after.memory_cap}

        def write(tx: Tx) -> None:
            now = time.time()
            queries.put_pipeline(tx.db, after, now)
            tx.record(about, "observation.pipeline", details, started_at=now, status=OpStatus.SUCCEEDED)
            tx.event(EventType.PIPELINE_CHANGED, about, details)

        await self.core.commit(write)
        self._pipelines[name] = after
        return self._settings_of(name)


def _normalized(observation: Observation) -> Observation:
    """The pipeline defaults to "default", the status is upper case, attempt 0 is 1."""
    changes: dict[str, Any] = {}
    if not observation.pipeline:
        changes["pipeline"] = DEFAULT_PIPELINE
    if observation.status != observation.status.upper():
        changes["status"] = observation.status.upper()
    if observation.attempt == 0:
        changes["attempt"] = 1
    if not changes:
        return observation
    return replace(observation, **changes)
