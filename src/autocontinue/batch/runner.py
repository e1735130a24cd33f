"""``batch`` / ``abatch``: many prompts, one journal, resumable, live or through Message Batches.

The flow: read the items (bad lines named), find or create the batch in the journal (a plain
rerun of the same input and options finds the earlier batch; ``resume=`` names one; a new
batch takes over the items earlier ones finished with the same record and settings), write
the output of the items it already finished, then run the rest: live (``live.py``, paced by
the rate limits) or through Message Batches (``service.py``). Each item's line is written as
it ends.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..backends.base import Backend
from ..backends.select import backend_for, check_client_or_url, infer_backend
from ..catalogue import ANTHROPIC_DEFAULT_MODEL, LOCAL_DEFAULT_MODEL
from ..errors import ConfigurationError, MissingCredentialsError
from ..events import Event
from ..journal import Journal, default_journal_path, redact_url
from ..options import Options
from .items import ITEM_OPTION_NAMES, BadLine, BatchItem, items_from_objects, no_items_error, parse_lines
from .live import ItemRunner, PacedBackend, run_items
from .output import ItemResult, OutputWriter, check_targets
from .pacing import Pacer
from .progress import BatchProgress
from .service import ServiceDriver
from .store import BatchStore, ItemRecord

__all__ = [
    "BatchResult",
    "StrictInputError",
    "batch",
    "abatch",
    "load_items",
    "VIAS",
    "DEFAULT_POLL_INTERVAL",
]

VIAS = ("live", "batches")
DEFAULT_CONCURRENCY = 32
#: Seconds between polls of a Message Batches job (the CLI's default too).
DEFAULT_POLL_INTERVAL = 10.0


class StrictInputError(ConfigurationError):
    """``strict=True`` and the input has bad lines (the CLI's hint names ``--strict``)."""


@dataclass
class BatchResult:
    """What a batch did: every item's result (input order), the bad input lines, the pacing."""

    batch_id: str
    results: list[ItemResult]
    bad_lines: list[BadLine] = field(default_factory=list)
    journal: Path | None = None
    #: Calls paced, and those the service refused with 429 (live runs).
    calls: int = 0
    throttled: int = 0
    #: True when pacing meant something: a remote service whose limits were known (given or
    #: told in its headers) or that refused a call with 429. False for a local backend.
    paced: bool = False
    elapsed_s: float = 0.0
    #: Message Batches jobs collected by this process (``via="batches"``).
    service_jobs: list[str] = field(default_factory=list)
    #: One line each for what did not stop the batch but should be known (e.g. a round the
    #: service holds twice after a crash, see ``ServiceDriver.find_landed``), from this run and
    #: the runs of the batch before it (they are journaled with the batch).
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[ItemResult]:
        return [r for r in self.results if r.error]

    @property
    def cost_usd(self) -> float:
        return sum(r.cost_usd for r in self.results)


def load_items(source: Any) -> tuple[list[BatchItem], list[BadLine]]:
    """Items from a path (JSONL or plain text) or from an iterable of dicts / strings."""
    if isinstance(source, (str, os.PathLike)):
        try:
            text = Path(source).read_text(encoding="utf-8").removeprefix("\ufeff")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(
                f"cannot read the input {source}: {exc}", hint="give a UTF-8 JSONL or text file"
            ) from None
        return parse_lines(text)
    if isinstance(source, Iterable):
        return items_from_objects(list(enumerate(source, start=1)))
    raise ConfigurationError(
        "the batch input must be a path or a list of items", hint="e.g. [{'id': 'a', 'prompt': '...'}]"
    )


def _check_defaults(options: dict[str, Any]) -> None:
    """Refuse an unknown or bad item default before anything is spent (it would fail every item)."""
    unknown = sorted(set(options) - set(ITEM_OPTION_NAMES) - {"system"})
    if unknown:
        raise ConfigurationError(
            f"unknown option {unknown[0]!r} for a batch", hint="options are: " + ", ".join(ITEM_OPTION_NAMES)
        )
    Options(**{name: value for name, value in options.items() if value is not None}).validate()


#: Options that choose the backend itself: one backend (one client) serves every item of a
#: batch, so an item cannot have its own (it would silently run on the batch's).
_BATCH_WIDE = ("base_url", "server", "model_path")


def _check_item_options(items: list[BatchItem], options: dict[str, Any]) -> None:
    for item in items:
        for name in _BATCH_WIDE:
            if name in item.options and item.options[name] != options.get(name):
                where = f" on line {item.line}" if item.line else ""
                raise ConfigurationError(
                    f"item {item.id!r}{where} sets its own {name}, but one backend serves the whole batch",
                    hint=f"give {name} to the whole batch (--{name.replace('_', '-')}); items for "
                    "another one are a batch of their own",
                )


def _check_resumed_options(batch_id: str, started: dict[str, Any], options: dict[str, Any]) -> None:
    """A resumed batch keeps the options it was started with: one given anew with another
    value would silently not apply, so it is refused (the same value is fine)."""
    given = json.loads(json.dumps(_journaled(options), default=str))
    started = _journaled(started)  # a batch journaled before URLs were redacted
    for name in sorted(given):
        if given[name] is not None and given[name] != started.get(name):
            raise ConfigurationError(
                f"batch {batch_id} runs with the options it was started with: "
                f"{name} {started.get(name)!r}, not {given[name]!r}",
                hint=f"drop {name} to resume it, or start a new batch without resume",
            )


def _check_resumed_items(store: BatchStore, batch_id: str, items: list[BatchItem]) -> None:
    """A resumed batch given an input must be given its own: another input's items would
    silently get that batch's answers."""
    if not items:
        return
    held = [r.item.to_record() for r in store.items(batch_id)]
    given = [item.to_record() for item in items]
    differ = [g["id"] for g, h in zip(given, held) if _comparable(g) != _comparable(h)]
    if differ or len(given) != len(held):
        why = f"item {differ[0]!r} differs" if differ else f"{len(given)} items, not {len(held)}"
        raise ConfigurationError(
            f"the input is not the input of batch {batch_id} ({why})",
            hint="resume it with its own input or with none; to run this input, start a batch of "
            "its own without resume",
        )


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    """An item record as the journal holds it, without the batch's base URL (journaled items
    do not keep it)."""
    options = {k: v for k, v in (record.get("options") or {}).items() if k != "base_url"}
    return dict(json.loads(json.dumps({**record, "options": options}, default=str)))


#: The batch settings' mark that its base URL held a secret, which the journal does not keep.
_SECRET_URL = "base_url_secret"

#: The batch settings' record of the endpoint (a digest) and default model the batch ran on.
_EFFECTIVE = "effective"


def _holds_secret(url: str | None) -> bool:
    """True if ``url`` carries what the journal must not keep (user:password, a query)."""
    if not url:
        return False
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return True
    return bool(parts.username or parts.password or parts.query or parts.fragment)


def _journaled(options: dict[str, Any]) -> dict[str, Any]:
    """The batch options as the journal keeps them: the base URL without its secrets."""
    if not options.get("base_url"):
        return options
    return {**options, "base_url": redact_url(str(options["base_url"]))}


def _url_digest(url: str) -> str:
    """A sha256 of the full URL (its user, password and query included): two endpoints whose
    redacted forms are equal still differ by it, and the journal never keeps the URL itself."""
    return hashlib.sha256(str(url).encode()).hexdigest()


def _effective(options: dict[str, Any], via: str, backend: Any, client: Any) -> dict[str, str]:
    """What decides the answers but the journaled options leave out: the endpoint actually
    used (a digest of --base-url, else of ANTHROPIC_BASE_URL / OPENAI_BASE_URL, else of the
    client's base URL) and, when no model is named, the catalogue's default model of the
    backend. A reused answer must come from the same endpoint and model."""
    name = _backend_name(backend)
    if via == "batches":
        name = "anthropic"
    elif name is None:
        name = "local" if options.get("model_path") else infer_backend(client, options.get("base_url"))
    url = options.get("base_url")
    if not url and client is not None:
        url = getattr(client, "base_url", None)
    if not url:
        env = {"anthropic": "ANTHROPIC_BASE_URL", "openai": "OPENAI_BASE_URL"}.get(name)
        url = os.environ.get(env) if env else None
    found: dict[str, str] = {}
    if url:
        found["endpoint"] = _url_digest(str(url))
    if not options.get("model"):
        model = {"anthropic": ANTHROPIC_DEFAULT_MODEL, "local": LOCAL_DEFAULT_MODEL}.get(name)
        if name == "local" and options.get("model_path"):
            model = None  # the file is the model
        if model:
            found["default_model"] = model
    return found


def _without_url(item: BatchItem) -> BatchItem:
    """An item without its own base_url (checked equal to the batch's, which the journal keeps
    redacted); the item's record would otherwise journal the URL's secret."""
    if "base_url" not in item.options:
        return item
    return replace(item, options={k: v for k, v in item.options.items() if k != "base_url"})


def _usable_url(record: Any, given: str | None) -> str:
    """The batch's base URL with its secret: the one given now if it is the same endpoint
    (its redacted form equals the journaled one), else ANTHROPIC_BASE_URL / OPENAI_BASE_URL if
    it is; a journaled URL that held no secret is used as it is."""
    stored = str(record.settings["options"]["base_url"])
    if given and redact_url(given) == redact_url(stored):
        return given
    if not record.settings.get(_SECRET_URL):
        return stored
    for name in ("ANTHROPIC_BASE_URL", "OPENAI_BASE_URL"):
        url = os.environ.get(name)
        if url and redact_url(url) == stored:
            return url
    raise ConfigurationError(
        f"batch {record.id} was started with a base URL holding a secret (user:password or a "
        f"query) at {stored}, and the journal does not keep secrets",
        hint="give the same URL again with --base-url (base_url=), or set ANTHROPIC_BASE_URL "
        "(OPENAI_BASE_URL for openai) to it",
    )


def _check_via_backend(via: str, backend: Any, client: Any, options: dict[str, Any]) -> None:
    """Message Batches are Anthropic's: another backend with ``via="batches"`` is refused, not
    quietly replaced by the Anthropic service (which would bill the user's Anthropic key); so
    is ``server`` (how an OpenAI-compatible server continues), which nothing there would read."""
    if via != "batches":
        return
    name = _backend_name(backend)
    if name is None and options.get("model_path"):
        name = "local"
    if name not in (None, "anthropic"):
        raise ConfigurationError(
            f"--via batches runs on Anthropic's Message Batches, not on the {name} backend",
            hint="drop --via batches to run it live, or use --backend anthropic",
        )
    if options.get("server") is not None:
        raise ConfigurationError(
            "--server is for OpenAI-compatible servers; --via batches runs on Anthropic's Message Batches",
            hint="drop --server, or drop --via batches and use --backend openai",
        )
    check_client_or_url(client, options.get("base_url"))


def _make_output_dir(path: Path) -> None:
    """Create the output directory before anything is spent, or refuse it in one line."""
    try:
        path.expanduser().mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot create the output directory {path}: {exc.strerror or exc}",
            hint="choose a directory you can write to",
        ) from None
    if not os.access(path.expanduser(), os.W_OK):
        raise ConfigurationError(
            f"the output directory {path} is not writable", hint="choose a directory you can write to"
        )


def batch_key(
    items: list[BatchItem],
    defaults: dict[str, Any],
    via: str,
    backend: str | None = None,
    url_digest: str | None = None,
) -> str:
    """Same input, options, mode and backend: same key (a plain rerun finds its batch by it).

    A backend named other than anthropic is part of the key (the same input on another
    backend is another batch); anthropic and an unnamed one leave it out, so the keys of
    batches journaled before the backend counted stay as they were. ``url_digest`` (of the
    full --base-url, whose journaled form is redacted) tells apart two endpoints that differ
    only in a query or user; a batch without a base URL leaves it out, and keeps its key.
    """
    named = {"backend": backend} if backend not in (None, "anthropic") else {}
    url = {"base_url_digest": url_digest} if url_digest else {}
    blob = json.dumps(
        {"items": [i.to_record() for i in items], "defaults": defaults, "via": via, **named, **url},
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


async def abatch(
    inputs: Any = None,
    *,
    output: str | os.PathLike[str] | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    journal: str | os.PathLike[str] | None = None,
    resume: str | None = None,
    fresh: bool = False,
    via: str = "live",
    concurrency: int = DEFAULT_CONCURRENCY,
    client: Any = None,
    backend: Any = None,
    limits: dict[str, float] | None = None,
    strict: bool = False,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    beta_300k: bool = True,
    on_event: Callable[[str, Event], None] | None = None,
    on_item: Callable[[ItemResult, BatchProgress], None] | None = None,
    on_batch: Callable[[str, BatchProgress], None] | None = None,
    on_bad_line: Callable[[BadLine], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    driver_options: dict[str, Any] | None = None,
    resumable: bool = True,
    **options: Any,
) -> BatchResult:
    """Run every item of ``inputs`` to its end; see ``batch``."""
    _check_defaults(options)
    if via not in VIAS:
        raise ConfigurationError(f"unknown via {via!r}", hint="use 'live' or 'batches'")
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigurationError(f"concurrency must be a positive whole number, got {concurrency!r}")
    _check_via_backend(via, backend, client, options)
    items, bad = load_items(inputs) if inputs is not None else ([], [])
    if strict and bad:
        raise StrictInputError(
            f"{len(bad)} bad line{'s' if len(bad) != 1 else ''} in the input, the first: {bad[0]}",
            hint="fix them, or leave out strict=True to skip them",
        )
    if on_bad_line is not None:
        for line in bad:
            on_bad_line(line)
    if inputs is not None and not items:
        raise no_items_error(bad)
    _check_item_options(items, options)
    items = [_without_url(item) for item in items]
    if output_dir is not None:
        _make_output_dir(Path(output_dir))
    path = Path(journal).expanduser() if journal else default_journal_path()
    check_targets(output, output_dir, inputs=inputs, journal=path, ids=[item.id for item in items])
    with Journal(path) as runs:
        store = BatchStore(path)
        try:
            batch_id = _find_or_create(
                store,
                items,
                _journaled(options),
                via,
                resume,
                fresh,
                _backend_name(backend),
                on_note,
                secret_url=_holds_secret(options.get("base_url")),
                effective=_effective(options, via, backend, client),
            )
            return await _run(
                store,
                runs,
                batch_id,
                bad,
                given_url=options.get("base_url"),
                writer=OutputWriter(
                    Path(output) if output else None, output_dir=Path(output_dir) if output_dir else None
                ),
                via=via,
                concurrency=concurrency,
                client=client,
                backend=backend,
                limits=limits,
                poll_interval=poll_interval,
                beta_300k=beta_300k,
                on_event=on_event,
                on_item=on_item,
                on_batch=on_batch,
                on_warning=on_warning,
                # on_note is also a ServiceDriver field (it tells why a Message Batches run waits)
                driver_options={**(driver_options or {}), **({"on_note": on_note} if on_note else {})},
                resumable=resumable,
            )
        finally:
            store.close()


def batch(inputs: Any = None, **options: Any) -> BatchResult:
    """Answer many prompts, each to its end, under one journal entry; returns a BatchResult.

    ``inputs``: a JSONL file (``{"id", "prompt"}`` or ``{"id", "messages", "system"}`` plus any
    option per item), a plain text file (one prompt a line), or a list of such dicts. Options:
    ``output`` (a JSONL file, one line per item as it ends), ``output_dir``, ``journal``,
    ``resume`` (a batch id), ``fresh`` (do not pick up an earlier identical batch), ``via``
    ("live" | "batches"), ``concurrency``, ``client``, ``backend``, ``limits`` (a minute's
    requests / input / output tokens, when the service does not say), ``strict``,
    ``poll_interval``, ``on_event``, ``on_item``, ``on_batch``, ``on_bad_line``, ``on_warning`` (told each
    line about money, e.g. a round billed twice, as it happens; they are also journaled with the
    batch and in ``BatchResult.warnings``), ``on_note`` (told a line, not about money: when a
    ``via="batches"`` run waits on the service for a reason the user cannot see, and how many
    items a new batch took from earlier ones), ``driver_options`` (fields of ``ServiceDriver``, e.g.
    ``create_timeout`` and ``clock_skew``; for tests), and any run option of ``generate`` as the
    default of every item.
    """
    return asyncio.run(abatch(inputs, **options))


def _find_or_create(
    store: BatchStore,
    items: list[BatchItem],
    options: dict[str, Any],
    via: str,
    resume: str | None,
    fresh: bool,
    backend: str | None = None,
    on_note: Callable[[str], None] | None = None,
    *,
    secret_url: bool = False,
    effective: dict[str, str] | None = None,
) -> str:
    if resume:
        record = store.get(resume)
        if record is None:
            raise ConfigurationError(
                f"no batch {resume!r} in the journal", hint="rerun the same command without --resume"
            )
        _check_resumed_options(record.id, record.settings.get("options", {}), options)
        _check_resumed_items(store, record.id, items)
        return record.id
    effective = effective or {}
    given_url = effective.get("endpoint") if options.get("base_url") else None
    key = batch_key(items, options, via, backend, given_url)
    # The endpoint from the environment and the default model are not in the key (batches
    # journaled before they counted keep their keys): an earlier batch that recorded others is
    # another batch. One that recorded none predates them and is taken as before.
    earlier = (
        None
        if fresh
        else store.latest_with_key(key, lambda b: b.settings.get(_EFFECTIVE, effective) == effective)
    )
    if earlier is not None:
        return earlier.id
    settings: dict[str, Any] = {"options": options, "via": via, **({"backend": backend} if backend else {})}
    if effective:
        settings[_EFFECTIVE] = effective  # digests and a model name, never the URL
    if secret_url:
        settings[_SECRET_URL] = True
    if fresh:
        return store.create(key=key, via=via, settings=settings, items=items)
    return _create_reusing(store, key, via, settings, items, on_note)


def _create_reusing(
    store: BatchStore,
    key: str,
    via: str,
    settings: dict[str, Any],
    items: list[BatchItem],
    on_note: Callable[[str], None] | None,
) -> str:
    """A new batch that takes over the items earlier batches finished with the same record and
    settings (a line added, fixed or removed pays only for what changed), telling ``on_note``."""
    batch_id, taken = store.create_reusing(key=key, via=via, settings=settings, items=items)
    if taken and on_note is not None:
        on_note(
            f"{taken} of {len(items)} item{'s' if len(items) != 1 else ''} taken from earlier batches "
            "(finished there with the same prompt and options); --fresh runs them again"
        )
    return batch_id


def _backend_name(backend: Any) -> str | None:
    """The backend a caller named (a name, or a Backend's name); None when left to the environment."""
    name = getattr(backend, "name", backend)
    return name if isinstance(name, str) else None


async def _run(
    store: BatchStore,
    runs: Journal,
    batch_id: str,
    bad: list[BadLine],
    *,
    given_url: str | None = None,
    writer: OutputWriter,
    via: str,
    concurrency: int,
    client: Any,
    backend: Any,
    limits: dict[str, float] | None,
    poll_interval: float,
    beta_300k: bool,
    on_event: Any,
    on_item: Any,
    on_batch: Any,
    on_warning: Any = None,
    driver_options: dict[str, Any] | None = None,
    resumable: bool = True,
) -> BatchResult:
    record = store.get(batch_id)
    assert record is not None
    defaults: dict[str, Any] = record.settings.get("options", {})
    via = record.settings.get("via", via)
    if backend is None:  # a resumed batch runs on the backend it was started with
        backend = record.settings.get("backend")
    records = store.items(batch_id)
    progress = BatchProgress(total=len(records))
    results: dict[str, ItemResult] = {}
    finished = [r for r in records if r.status == "finished" and r.result is not None]
    if defaults.get("base_url") and len(finished) < len(records):  # items to run need its secret
        defaults = {**defaults, "base_url": _usable_url(record, given_url)}
    writer.rewrite([r.result for r in finished if r.result is not None])
    for r in finished:
        assert r.result is not None
        results[r.item.id] = r.result
        progress.on_item(r.result, "finished", counted=False)
    if on_batch is not None:
        on_batch(batch_id, progress)

    def done(result: ItemResult, status: str) -> None:
        store.finish_item(batch_id, result, status)
        writer.write(result)
        results[result.id] = result
        progress.on_item(result, status)
        if on_item is not None:
            on_item(result, progress)

    def event(item_id: str, ev: Event) -> None:
        progress.on_event(item_id, ev)
        if on_event is not None:
            on_event(item_id, ev)

    todo = [r for r in records if r.item.id not in results]
    outcome = BatchResult(batch_id, [], bad, journal=runs.path)
    store.set_state(batch_id, "running")
    try:
        if not todo:
            pass  # every item is finished (here or in earlier batches): no backend, no key needed
        elif via == "batches":
            outcome.service_jobs = await _run_service(
                store,
                runs,
                batch_id,
                todo,
                defaults,
                client,
                poll_interval,
                beta_300k,
                event,
                done,
                progress,
                on_warning,
                {"resumable": resumable, **(driver_options or {})},
            )
        else:
            outcome.calls, outcome.throttled, outcome.paced = await _run_live(
                runs,
                batch_id,
                todo,
                defaults,
                concurrency,
                client,
                backend,
                limits,
                store,
                event,
                done,
                progress,
                resumable,
            )
    except BaseException:
        store.set_state(batch_id, "interrupted")
        raise
    finally:
        writer.close()
    outcome.results = [results[r.item.id] for r in records if r.item.id in results]
    outcome.elapsed_s = progress.elapsed
    outcome.warnings = store.warnings(batch_id)  # this run's and those of runs before it
    complete = all(r.item.id in results and not results[r.item.id].error for r in records)
    store.set_state(batch_id, "finished" if complete else "incomplete")
    return outcome


async def _run_live(
    runs: Journal,
    batch_id: str,
    todo: list[ItemRecord],
    defaults: dict[str, Any],
    concurrency: int,
    client: Any,
    backend: Any,
    limits: dict[str, float] | None,
    store: BatchStore,
    event: Any,
    done: Any,
    progress: BatchProgress,
    resumable: bool = True,
) -> tuple[int, int, bool]:
    pacer = Pacer(given=dict(limits or {}))
    shared, owned = _live_backend(backend, client, defaults, pacer)
    if shared.name == "local":
        concurrency = 1  # one model in memory: items in turn
    runner = ItemRunner(
        PacedBackend(shared, pacer),
        runs,
        defaults,
        batch_id,
        on_event=event,
        on_run=lambda item_id, run_id: store.set_run(batch_id, item_id, run_id),
        on_start=progress.on_start,
        resumable=resumable,
    )
    try:
        await run_items(runner, todo, concurrency, done)
    finally:
        if owned:
            await _aclose(shared)
    paced = shared.name != "local" and bool(pacer.buckets or pacer.throttled)
    return pacer.calls, pacer.throttled, paced


def _live_backend(backend: Any, client: Any, defaults: dict[str, Any], pacer: Pacer) -> tuple[Backend, bool]:
    """The one backend every item shares, and whether this batch made it (and closes it).

    Resolved from the batch's options like any run's (``backend_for``); an Anthropic backend
    the batch makes gets a client whose responses feed the pacer.
    """
    if isinstance(backend, Backend):
        return backend, False
    settings = {**defaults, "backend": backend}
    name = backend or infer_backend(client, defaults.get("base_url"))
    if name == "anthropic" and client is None:
        base_url = settings.pop("base_url", None)
        paced = paced_client(pacer, **({"base_url": base_url} if base_url else {}))
        return backend_for({**settings, "backend": "anthropic"}, client=paced), True
    return backend_for(settings, client=client), client is None


def paced_client(pacer: Pacer, **kwargs: Any) -> Any:
    """An ``anthropic.AsyncAnthropic`` whose every response's rate-limit headers reach ``pacer``.

    The SDK's own retries are off: a 429 comes back to the pacer, which waits as the service
    asks and slows down, instead of the SDK resending behind its back.
    """
    try:
        import anthropic
    except ImportError:
        from ..errors import BackendUnavailableError

        raise BackendUnavailableError(
            "the anthropic SDK is not installed", hint="pip install 'autocontinue[anthropic]'"
        ) from None
    if not (
        os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN") or kwargs.get("api_key")
    ):
        raise MissingCredentialsError(
            "no Anthropic API key", hint="export ANTHROPIC_API_KEY=sk-ant-... (or use --backend local)"
        )

    async def observe(response: Any) -> None:
        pacer.observe(response.headers)

    http = anthropic.DefaultAsyncHttpxClient(event_hooks={"response": [observe]})
    return anthropic.AsyncAnthropic(http_client=http, max_retries=0, **kwargs)


async def _aclose(backend: Backend) -> None:
    client = getattr(backend, "client", None)
    close = getattr(client, "close", None)
    if close is None:
        backend.close()
        return
    outcome = close()
    if asyncio.iscoroutine(outcome):
        await outcome


async def _run_service(
    store: BatchStore,
    runs: Journal,
    batch_id: str,
    todo: list[ItemRecord],
    defaults: dict[str, Any],
    client: Any,
    poll_interval: float,
    beta_300k: bool,
    event: Any,
    done: Any,
    progress: BatchProgress,
    on_warning: Any,
    driver_options: dict[str, Any],
) -> list[str]:
    owned = client is None
    if owned:
        try:
            import anthropic
        except ImportError:
            from ..errors import BackendUnavailableError

            raise BackendUnavailableError(
                "the anthropic SDK is not installed", hint="pip install 'autocontinue[anthropic]'"
            ) from None
        if not (os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")):
            raise MissingCredentialsError(
                "no Anthropic API key", hint="Message Batches need ANTHROPIC_API_KEY"
            )
        # The batch's base URL (``--base-url``) wins over ANTHROPIC_BASE_URL, as for a live run.
        base_url = defaults.get("base_url")
        client = anthropic.AsyncAnthropic(**({"base_url": base_url} if base_url else {}))
    driver = ServiceDriver(
        client,
        runs,
        store,
        batch_id,
        defaults,
        on_event=event,
        on_done=done,
        on_start=progress.on_start,
        poll_interval=poll_interval,
        beta_300k=beta_300k,
        on_warning=on_warning,
        **driver_options,
    )
    try:
        await driver.run(todo)
    finally:
        if owned:
            await client.close()
    return driver.collected
