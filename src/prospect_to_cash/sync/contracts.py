"""The typed contracts the layers exchange: what a step is asked to do and what it answers.

``Window``, ``CompanyPair`` and ``SyncOptions`` go down from the DAG layer (operators, the
CLI, tests) into the engine; the ``*Result`` typed dicts come back up, JSON-safe so they
can go to XCom as they are. This module imports nothing heavy, so a DAG file can use it
while it is parsed.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from pathlib import Path

    from airflow.sdk import ObjectStoragePath


DATAVERSE_CONN_ID = "dynamics_dataverse_default"
FNO_CONN_ID = "dynamics_fno_default"
DEFAULT_JOURNAL_EVERY = 1000
DEFAULT_JOURNAL_SECONDS = 5.0
#: Error threshold defaults (`SyncOptions.max_rejected`, ``max_failed``): the demo world
#: rejects up to 10% of a template's rows by design (rows without keys, unknown codes),
#: so a run fails only well above what a healthy integration meets; a row the target
#: refuses for its data is rarer, hence the lower limit.
DEFAULT_MAX_REJECTED = "20%"
DEFAULT_MAX_FAILED = "5%"
#: Source deletes a run may apply (deactivate or delete) to a task's target rows: a
#: count or a share of the rows the task is known to have put there (its source index).
#: Above it nothing is applied and the deletes are held, until a run allows more.
DEFAULT_MAX_SOURCE_DELETES = "5%"
#: Seconds a scheduled run reads before its task's high-water mark (clock skew between
#: the service's ``modifiedon`` stamps and the end of the interval that was read).
DEFAULT_WATERMARK_OVERLAP = 300.0

Moment = datetime | str | None


# -- what a step is asked ------------------------------------------------------------------------


class WindowDict(TypedDict):
    """A `Window`'s ends as they go to XCom and asset events."""

    start: str | None
    end: str | None


def iso_utc(value: Moment) -> str | None:
    """``value`` as ``YYYY-MM-DDTHH:MM:SSZ`` (naive times are UTC); None or "" stays None.

    :raises ValueError: when ``value`` is text that is not ISO 8601.
    """
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value.strip()
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    else:
        moment = value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Window:
    """The change window a run reads: ``start <= change field < end`` (either end open).

    A template without a change field reads its source whole whatever the window;
    ``full_refresh`` makes every template do so. Both ends are normalized to UTC text, so
    a window compares, logs and goes to XCom the same way wherever it was made.

    ``since_watermark`` (a scheduled run) reads from the task's last high-water mark,
    less the overlap, when that is earlier than ``start``: a skipped or failed interval
    leaves no gap (`prospect_to_cash.sync.watermarks`). Without it the window is read
    exactly as given (a backfill, ``--since/--until``, the DAG's window Params).
    """

    start: str | None = None
    end: str | None = None
    full_refresh: bool = False
    since_watermark: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", iso_utc(self.start))
        object.__setattr__(self, "end", iso_utc(self.end))
        if self.start and self.end and self.start >= self.end:
            raise ValueError(f"empty change window: start {self.start} is not before end {self.end}")

    @classmethod
    def of(
        cls,
        data_interval_start: Moment = None,
        data_interval_end: Moment = None,
        *,
        start: Moment = None,
        end: Moment = None,
        full_refresh: bool = False,
        since_watermark: bool = False,
    ) -> Window:
        """The run's data interval, with either end replaced by an explicit one (the
        ``window_start`` / ``window_end`` Params). Neither given: everything. An explicit
        start is read exactly, whatever ``since_watermark`` says."""
        return cls(
            start=iso_utc(start) or iso_utc(data_interval_start),
            end=iso_utc(end) or iso_utc(data_interval_end),
            full_refresh=full_refresh,
            since_watermark=since_watermark and not iso_utc(start),
        )

    @property
    def bounded(self) -> bool:
        """Whether the window limits what a template with a change field reads."""
        return not self.full_refresh and bool(self.start or self.end)

    def to_dict(self) -> WindowDict:
        return {"start": self.start, "end": self.end}

    def but(self, **changes: Any) -> Window:
        """A copy with ``changes`` (names checked by `dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)


class CompanyPairDict(TypedDict):
    """A `CompanyPair` as it fans out over XCom (its overlays stay in the environment)."""

    legal_entity: str
    business_unit: str | None
    business_unit_id: str | None
    owner: str | None


@dataclass(frozen=True)
class CompanyPair:
    """One F&O legal entity (``dataAreaId``) and the Dataverse business unit it syncs with,
    with the ``defaults`` and ``value_maps`` the environment lays over the shared ones for it.
    """

    legal_entity: str
    business_unit: str | None = None
    business_unit_id: str | None = None
    owner: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    value_maps: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> CompanyPairDict:
        """The pair as the DAG layer fans out over it (JSON-serializable)."""
        return {
            "legal_entity": self.legal_entity,
            "business_unit": self.business_unit,
            "business_unit_id": self.business_unit_id,
            "owner": self.owner,
        }

    @classmethod
    def of(cls, pair: CompanyPair | CompanyPairDict | str) -> CompanyPair:
        """A pair from what a caller holds: the pair, its XCom form or its legal entity."""
        if isinstance(pair, CompanyPair):
            return pair
        if isinstance(pair, str):
            return cls(legal_entity=pair)
        return cls(**pair)


@dataclass(frozen=True)
class SyncOptions:
    """How the engine runs a step: where it stages, what it reads its mapping from, which
    connections (or ready hooks) it talks through, and the knobs tests and operators turn.

    :param run_id: names the staging folder; a retried task with the same run id resumes
        its load from the journal instead of writing twice.
    :param staging_folder: the run's staging folder under its template when it is not the
        run id (the DAGs name it after the data interval a person looks for).
    :param staging_root: staging URL or path (default ``P2C_STAGING_ROOT``).
    :param mappings_dir: the template files (default ``P2C_MAPPINGS_DIR``, else the project's).
    :param environment_file: an override layered on ``environment.yaml``.
    :param hooks: ready hooks, shared by company pairs running side by side (tests pass
        in-memory services); when None, hooks are made on the two connection ids.
    :param dry_run: plan and report; write nothing.
    :param check_metadata: compare a whole run's mapping with both ``$metadata`` first.
    :param page_size: rows per OData page (the hook's default when None).
    :param chunk_rows: rows the transform holds at once (``P2C_TRANSFORM_CHUNK_ROWS``, else
        50,000, when None).
    :param journal_every: load outcomes per journal file.
    :param journal_seconds: a journal file is also written when this much time passed.
    :param max_rejected: rejected rows a whole run tolerates: a count (``"25"``) or a
        percentage of the rows read (``"20%"``); above it the run fails after writing
        everything it could (`prospect_to_cash.sync.thresholds`).
    :param max_failed: the same for rows the target refused for their data.
    :param watermark_overlap: seconds a ``since_watermark`` window reads before the mark.
    :param max_source_deletes: target rows one run may deactivate or delete for source
        deletes (`prospect_to_cash.sync.deletes`): a count or a share of the rows the task
        put there; above it none is applied (all held and reported).
    """

    run_id: str
    staging_root: str | ObjectStoragePath | Path | None = None
    mappings_dir: str | Path | None = None
    environment_file: str | Path | None = None
    dataverse_conn_id: str = DATAVERSE_CONN_ID
    fno_conn_id: str = FNO_CONN_ID
    hooks: SyncHooks | None = field(default=None, compare=False)
    dry_run: bool = False
    check_metadata: bool = True
    page_size: int | None = None
    chunk_rows: int | None = None
    journal_every: int = DEFAULT_JOURNAL_EVERY
    journal_seconds: float = DEFAULT_JOURNAL_SECONDS
    max_rejected: str = DEFAULT_MAX_REJECTED
    max_failed: str = DEFAULT_MAX_FAILED
    watermark_overlap: float = DEFAULT_WATERMARK_OVERLAP
    max_source_deletes: str = DEFAULT_MAX_SOURCE_DELETES
    staging_folder: str | None = None

    def __post_init__(self) -> None:
        if self.journal_every < 1:
            raise ValueError("journal_every must be at least 1")
        from prospect_to_cash.sync.thresholds import Limit

        for name in ("max_rejected", "max_failed", "max_source_deletes"):
            object.__setattr__(self, name, str(Limit.parse(getattr(self, name))))

    def but(self, **changes: Any) -> SyncOptions:
        """A copy with ``changes`` (names checked by `dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)


@dataclass
class SyncHooks:
    """The two hooks the engine talks through (tests pass in-memory stand-ins).

    Made on first use, under a lock: company pairs running side by side must share one
    hook per service (one limiter, one token), not each make their own.
    """

    dataverse: Any = None
    fno: Any = None
    dataverse_conn_id: str = DATAVERSE_CONN_ID
    fno_conn_id: str = FNO_CONN_ID
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def from_options(cls, options: SyncOptions) -> SyncHooks:
        """The options' ``hooks`` if given, else hooks on the options' connection ids."""
        return options.hooks or cls(
            dataverse_conn_id=options.dataverse_conn_id, fno_conn_id=options.fno_conn_id
        )

    def for_system(self, system: str) -> Any:
        if system not in ("dataverse", "fno"):
            raise ValueError(f"unknown system {system!r}")
        with self._lock:
            if system == "dataverse":
                if self.dataverse is None:
                    from prospect_to_cash.hooks.dataverse import DataverseHook

                    self.dataverse = DataverseHook(dataverse_conn_id=self.dataverse_conn_id)
                return self.dataverse
            if self.fno is None:
                from prospect_to_cash.hooks.fno import FinanceOperationsHook

                self.fno = FinanceOperationsHook(fno_conn_id=self.fno_conn_id)
            return self.fno


class SyncArgs(TypedDict, total=False):
    """The keyword form of `SyncOptions` and `Window` the engine's entry points accept
    beside (or instead of) the objects: ``run_template("accounts", legal_entity="usmf",
    run_id="r1", staging_root=root)``. Its names are `SyncOptions`' fields plus the
    window's; a unit test keeps the two lists equal."""

    run_id: str
    staging_root: str | ObjectStoragePath | Path | None
    mappings_dir: str | Path | None
    environment_file: str | Path | None
    dataverse_conn_id: str
    fno_conn_id: str
    hooks: SyncHooks | None
    dry_run: bool
    check_metadata: bool
    page_size: int | None
    chunk_rows: int | None
    journal_every: int
    journal_seconds: float
    max_rejected: str
    max_failed: str
    watermark_overlap: float
    max_source_deletes: str
    staging_folder: str | None
    data_interval_start: Moment
    data_interval_end: Moment
    full_refresh: bool
    since_watermark: bool


WINDOW_ARGS = ("data_interval_start", "data_interval_end", "full_refresh", "since_watermark")


def resolve(
    options: SyncOptions | None, window: Window | None, given: SyncArgs
) -> tuple[SyncOptions, Window]:
    """The options and window of a call: the objects passed, with the keyword form's
    values laid over them. An unknown keyword is a `TypeError`, as for any function."""
    values = dict(given)
    unknown = sorted(set(values) - set(SyncArgs.__annotations__))
    if unknown:
        raise TypeError(f"unknown sync option(s): {', '.join(unknown)}")
    spans = {name: values.pop(name) for name in WINDOW_ARGS if name in values}
    if options is None:
        if "run_id" not in values:
            raise TypeError("a sync step needs run_id (or options=SyncOptions(run_id=...))")
        options = SyncOptions(**values)
    elif values:
        options = options.but(**values)
    if window is None:
        window = Window.of(
            spans.get("data_interval_start"),
            spans.get("data_interval_end"),
            full_refresh=bool(spans.get("full_refresh", False)),
            since_watermark=bool(spans.get("since_watermark", False)),
        )
    elif spans:
        raise TypeError(f"pass either window= or {'/'.join(WINDOW_ARGS)}")
    return options, window


# -- what a step answers -------------------------------------------------------------------------

Counts = dict[str, int]


class StepResult(TypedDict):
    """What every engine step answers first: which task of which run, and where it staged."""

    template: str
    task: str
    legal_entity: str
    run_id: str
    step: str
    staging: str


class ExtractResult(StepResult):
    """The source rows of the window (``path``, ``read`` rows), the source-side reference
    tables (``references``: name → path) and the window actually read (``window``, after
    the high-water mark; ``window_file``, which the load reads to move the mark)."""

    path: str
    read: int
    references: dict[str, str]
    full_refresh: bool
    window: WindowDict
    window_file: str


class SnapshotResult(StepResult):
    """The target's current rows (``path``, ``rows``) and the target-side references."""

    path: str
    rows: int
    references: dict[str, str]


class ChunkingStats(TypedDict):
    """How the transform split its work (``chunks`` of at most ``chunk_rows``, ``buckets``)."""

    chunks: int
    chunk_rows: int
    buckets: int


class TransformResult(StepResult):
    """The plan files (``creates``, ``updates``, ``unchanged``, ``second_pass``,
    ``planned``, ``rejected``, ``summary``: name → path) and the plan's counts."""

    paths: dict[str, str]
    counts: Counts
    chunking: ChunkingStats


class LoadResult(StepResult, total=False):
    """What the load wrote (``counts``; ``paths``: ``outcome`` and ``failed``), or in a dry
    run the plan's counts and ``samples`` (row values: for the log, not for XCom)."""

    dry_run: bool
    counts: Counts
    paths: dict[str, str]
    samples: dict[str, list[dict[str, Any]]]


class DeadLetters(TypedDict):
    """A task's dead-letter files: ``rejected`` by the transform, ``failed`` at the service,
    ``parked``: the pending ledger's parked rows the run did not read (`pending`)."""

    rejected: str | None
    failed: str | None
    parked: str | None


class DeadLetterFile(TypedDict):
    task: str
    kind: str
    path: str
    rows: int


class TaskReport(TypedDict):
    """One task's part of a run summary: its counts, dead letters and staged files."""

    counts: Counts
    deadletter: DeadLetters
    paths: dict[str, str]


class RunSummary(TypedDict):
    """One template's run for one company pair: ``summary.json``, whoever ran it (a DAG's
    report task, ``run_template``, the CLI or ``TemplateSyncOperator``). ``counts`` sums
    the tasks' counts; ``dead_letters`` lists the files that hold rows."""

    template: str
    dag_id: str | None
    legal_entity: str
    business_unit: str | None
    run_id: str
    dry_run: bool
    finished_at: str
    window: WindowDict | None
    counts: Counts
    tasks: dict[str, TaskReport]
    dead_letters: list[DeadLetterFile]


class TemplateRunResult(RunSummary, total=False):
    """``run_template``'s answer: the summary, where it was written, and in a dry run the
    plan's sample rows per task (row values: for a log or a reviewer, not for XCom)."""

    summary_path: str
    samples: dict[str, dict[str, list[dict[str, Any]]]]


class CompanyCounts(TypedDict):
    counts: Counts
    summary_path: str


class PairsResult(TypedDict):
    """``run_company_pairs``' answer: XCom-safe counts, summed and per company that finished,
    and ``failed``: each company pair that did not, with its error (empty when all did)."""

    template: str
    run_id: str
    dry_run: bool
    counts: Counts
    companies: dict[str, CompanyCounts]
    failed: dict[str, str]


# -- what the DAG layer's tasks hand each other over XCom ---------------------------------------


class StagedRows(TypedDict):
    path: str
    rows: int


class ExtractedXCom(TypedDict):
    """An extract task's answer: the staged source rows and target snapshot of one pair."""

    template: str
    task: str
    legal_entity: str
    window: WindowDict
    full_refresh: bool
    source: StagedRows
    target: StagedRows
    staging: str


class TransformedXCom(TypedDict):
    """A transform task's answer: the plan's counts and files (``summary``, ``rejected``...)."""

    template: str
    task: str
    legal_entity: str
    counts: Counts
    paths: dict[str, str]


class LoadedXCom(TypedDict):
    """A load task's answer (and its asset event's extra): counts and dead-letter files."""

    template: str
    task: str
    legal_entity: str
    run_id: str
    dry_run: bool
    window: WindowDict | None
    full_refresh: bool
    counts: Counts
    deadletter: DeadLetters
    plan: str | None
    outcome: str | None


class ReportedXCom(TypedDict):
    """A report task's answer: the pair's totals and where its ``summary.json`` is."""

    legal_entity: str
    dry_run: bool
    counts: Counts
    summary: str
    dead_letters: list[DeadLetterFile]
