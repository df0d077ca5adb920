"""Bulk import: a shop's history (customers and orders) as NDJSON, answered line by line.

The body is read a block at a time and the answer is written as it goes (one NDJSON line per
input line, a batch's answers in one write, then a summary line), so memory does not grow
with the body. Every line is validated on its own (_checked: no database), by a thread up to
AHEAD lines ahead of the batch being applied (_ahead: the parsing overlaps the batch's
statements); the valid ones are applied, the others answered with their errors.

Transactions: consecutive customer lines in groups of up to PEOPLE (one transaction each, a
savepoint per line, so that a line refused leaves the others: one commit per line made 10,000
new customers outlast a worker's timeout); orders in batches of up to BATCH lines (one
transaction each, orders_import: a few statements per batch). On PostgreSQL two threads
apply the batches in turn, each on its own connection, so that a batch writes its orders
while the one before it updates its customers (_Applying); a batch still touches its
customers and commits only after the one before it is committed and answered. A line is
answered only once its batch is committed, so whatever the answer says was done is stored;
if the connection drops midway, the lines answered are stored and the others are not (a
body that ends before its Content-Length stops the import with a `body-incomplete` line:
_Whole).
Sending the same file again is safe: what is already there is answered `unchanged`. With an
`Idempotency-Key`, a retry of a finished import gets its first answer back, and nothing is
applied again (storefront/idempotency.py, idempotency_claim: the key is held while the import
runs, the answer stored once it is complete).
"""

import json
import logging
import queue
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from typing import Literal

from django.db import DatabaseError, connection, transaction
from django.http import StreamingHttpResponse
from django.utils import timezone, translation
from ninja import Router
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from clients.models import AuditOrigin, Customer
from clients.selectors import customers_with_email, customers_with_external_id
from clients.services import Taken, customer_sign_up, customer_update_by_customer
from orders.models import OrderStatus
from orders.services import (
    EARLIEST_PLACED_AT,
    FUTURE_TOLERANCE,
    ImportedOrder,
    OrderError,
    order_draft,
    order_import_check,
    orders_import,
)
from storefront.auth import ApiKeyAuth
from storefront.calls import call_options
from storefront.endpoints.orders import Money, OrderCreate
from storefront.idempotency import Claim, HashedBody, idempotency_claim, key_from
from storefront.models import Scope
from storefront.parsing import _no_constant, _no_duplicates
from storefront.problems import Problem
from storefront.schemas import AwareDatetime, Email, In, Language, Phone, Text

logger = logging.getLogger(__name__)
router = Router()

NDJSON = "application/x-ndjson"
MAX_LINES = 10_000
MAX_LINE_BYTES = 64 * 1024
MAX_BODY = MAX_LINES * 2048
BATCH = 2000
PEOPLE = 200
READ_BYTES = 256 * 1024
# Lines read and checked ahead of the batch being applied (_ahead): about a batch, so that
# the next batch's parsing overlaps the current batch's statements.
AHEAD = BATCH


class CustomerImport(In):
    """A customer: created, or, when one has this external_id (else this email), updated
    with the fields the line gives (a field left out is kept)."""

    type: Literal["customer"]
    email: Email
    first_name: Text(150) = ""
    last_name: Text(150) = ""
    phone: Phone = ""
    language: Language = ""
    external_id: Text(100) = Field(
        "", description="The shop's id: the customer is matched on it, else on the email."
    )
    created_at: AwareDatetime | None = Field(
        None,
        description="When the account was opened on the shop (the client page's \"Customer "
        'since"): taken when the customer is created, now if left out; a customer already '
        "there keeps its date.",
    )

    @field_validator("created_at")
    @classmethod
    def _opened(cls, value):
        if value is not None and value > timezone.now() + FUTURE_TOLERANCE:
            raise PydanticCustomError("datetime", "is in the future")
        if value is not None and value < EARLIEST_PLACED_AT:
            raise PydanticCustomError("datetime", "is before 1990")
        return value


class OrderImport(OrderCreate):
    type: Literal["order"]
    status: OrderStatus = OrderStatus.PENDING
    refunded_amount: Money | None = Field(None, description="Refunded so far.")

    @model_validator(mode="after")
    def _placed(self):
        if self.placed_at is None:
            raise ValueError("placed_at is required in an import")
        return self


_KINDS = {"customer": CustomerImport, "order": OrderImport}
# One encoder for every answer (json.dumps with an option builds a new one per call).
_encode = json.JSONEncoder(ensure_ascii=False).encode
_SELF_FIELDS = ("email", "first_name", "last_name", "phone", "language", "external_id")


def _errors(error: ValidationError) -> list[dict]:
    found = []
    for item in error.errors():
        loc = [str(p) for p in item.get("loc", ()) if p != "type" or len(item["loc"]) > 1]
        message = item.get("msg", "is invalid")
        if item.get("type") == "extra_forbidden":
            message = "is not a field of this line"
        elif item.get("type") == "missing":
            message = "is required"
        found.append({"field": ".".join(loc) or "line", "message": message})
    return found


def _answer(line_no: int, result: str, kind: str | None = None, **fields) -> dict:
    answer = {"line": line_no, "result": result}
    if kind:
        answer["type"] = kind
    answer.update(fields)
    return answer


def _customer_apply(line: CustomerImport) -> tuple[str, Customer]:
    """Create the customer, or change the fields the line gives (as PATCH does: a field left
    out of the line is kept, not emptied). Recorded as done by the shop."""
    data = line.model_dump(exclude={"type"})
    found = Customer.objects.only("pk", *_SELF_FIELDS).filter(erased_at=None)
    if data["external_id"]:
        existing = customers_with_external_id(data["external_id"], found).first()
    else:
        existing = customers_with_email(data["email"], found).first()
    if existing is None:
        return "created", customer_sign_up(**data, origin=AuditOrigin.SHOP)
    given = line.model_fields_set - {"type"}
    changed = {n: data[n] for n in _SELF_FIELDS if n in given and getattr(existing, n) != data[n]}
    if not changed:
        return "unchanged", existing
    customer_update_by_customer(customer=existing, fields=changed, origin=AuditOrigin.SHOP)
    return "updated", existing


def _customer_line(number: int, line: CustomerImport) -> dict:
    try:
        try:
            with transaction.atomic():  # a savepoint: a line refused leaves the group's others
                result, customer = _customer_apply(line)
        except Taken:
            # Another call (the same file sent twice at once) may have just created this very
            # customer: once more finds it, and answers unchanged rather than taken.
            with transaction.atomic():
                result, customer = _customer_apply(line)
    except Taken as taken:
        return _answer(
            number,
            "error",
            "customer",
            errors=[{"field": taken.field, "message": "another customer already has it"}],
        )
    return _answer(number, result, "customer", id=customer.pk)


class _CustomerGroup:
    """Consecutive customer lines applied in one transaction (_customer_line: a savepoint
    each), and the answers to the lines refused between them, in the file's order."""

    def __init__(self):
        self.lines: list[tuple[int, CustomerImport]] = []
        self.ready: list[dict] = []

    def __len__(self):
        return len(self.lines)

    def add(self, number: int, line: CustomerImport) -> None:
        self.lines.append((number, line))

    def apply(self) -> list[dict]:
        lines, self.lines = self.lines, []
        ready, self.ready = self.ready, []
        with transaction.atomic():
            answers = [_customer_line(number, line) for number, line in lines]
        return sorted([*answers, *ready], key=lambda answer: answer["line"])


def _order_draft(line: OrderImport):
    # The lines as validated (LineIn has LineInput's attributes: order_draft reads them and
    # builds its own checked LineInputs).
    return order_draft(
        number=line.number,
        lines=line.lines,
        shipping=line.shipping,
        tax=line.tax,
        discount=line.discount,
        total=line.total,
        currency=line.currency,
        source=line.source,
        medium=line.medium,
        campaign=line.campaign,
        placed_at=line.placed_at,
    )


def _error_of(error: OrderError) -> list[dict]:
    return [{"field": error.field or "line", "message": error.messages[0], "code": error.code}]


def _refused(line_no: int, kind: str | None = None, *, errors: list[dict], **fields) -> dict:
    return _answer(line_no, "error", kind, errors=errors, **fields)


_ATTEMPTS = 5


class _OrderBatch:
    """Checked orders waiting to be applied together, and the answers to the lines between
    them (so that the answers keep the file's order)."""

    def __init__(self):
        self.lines: list[tuple[int, OrderImport, ImportedOrder]] = []
        self.numbers: set[str] = set()
        self.ready: list[dict] = []

    def __len__(self):
        return len(self.lines)

    def add(self, number: int, line: OrderImport, item: ImportedOrder) -> None:
        self.lines.append((number, line, item))
        self.numbers.add(item.draft.number)

    def answered(self, answer: dict) -> list[dict]:
        """An answer known now: held back while orders before it wait for their batch."""
        if not self.lines:
            return [answer]
        self.ready.append(answer)
        return []

    def apply(self, wait_turn=None) -> list[dict]:
        """Apply the batch (one transaction, on this thread's connection) and answer its
        lines and those held back with it, in the file's order. `wait_turn`: see
        orders_import."""
        lines, self.lines, self.numbers = self.lines, [], set()
        ready, self.ready = self.ready, []
        external = {line.customer_external_id for _, line, _ in lines if not line.customer_id}
        external.discard(None)
        by_external = (
            dict(customers_with_external_id(list(external)).values_list("external_id", "pk"))
            if external
            else {}
        )
        answers: dict[int, dict] = {}
        items, item_lines = [], []
        for number, line, item in lines:
            if not line.customer_id:
                customer_id = by_external.get(line.customer_external_id)
                if customer_id is None:
                    answers[number] = _refused(
                        number,
                        "order",
                        number=line.number,
                        errors=[
                            {
                                "field": "customer_external_id",
                                "message": "is not a customer of this shop",
                            }
                        ],
                    )
                    continue
                item = replace(item, customer_id=customer_id)
            items.append(item)
            item_lines.append(number)
        if items:
            for attempt in range(_ATTEMPTS):
                try:
                    if wait_turn is None:
                        results = orders_import(items)
                    else:
                        results = orders_import(items, wait_turn=wait_turn)
                    break
                except DatabaseError:
                    # A concurrent call took one of these numbers or deadlocked with us: the
                    # batch was rolled back whole; once more sees what the other one did
                    # (committed by then: the conflict waited for it). The same file sent
                    # twice at once may collide on several of its batches in a row.
                    if attempt == _ATTEMPTS - 1:
                        raise
            for number, item, result in zip(item_lines, items, results, strict=True):
                if isinstance(result, OrderError):
                    answers[number] = _refused(
                        number, "order", number=item.draft.number, errors=_error_of(result)
                    )
                else:
                    answers[number] = _answer(number, result[0], "order", number=item.draft.number)
        answers.update((answer["line"], answer) for answer in ready)
        return [answers[number] for number in sorted(answers)]


class _BodyCut(Exception):
    """The body ended before its Content-Length: the client's connection dropped midway."""


class _Whole:
    """The body, read to its Content-Length: gunicorn and Django end a body early, with no
    error, when the client's connection drops, and its last line, cut, would be answered as
    a line of its own. A body cut short raises _BodyCut at its end instead."""

    def __init__(self, body, length: int):
        self._body = body
        self._length = length
        self.received = 0

    def read(self, size: int) -> bytes:
        try:
            block = self._body.read(size)
        except OSError as error:  # the client reset the connection (UnreadablePostError too)
            raise _BodyCut(f"{self.received} of {self._length} bytes ({error})") from error
        self.received += len(block)
        if not block and self.received < self._length:
            raise _BodyCut(f"{self.received} of {self._length} bytes")
        return block


def _read_lines(body) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) for each non-blank line; None for a line over MAX_LINE_BYTES.

    The body is read READ_BYTES at a time and split on newlines (a readline per line cost
    more CPU than parsing the line); memory holds one block and one unfinished line, and a
    line over the limit is skipped as it comes, never kept."""
    number = 0
    pending = b""  # the start of a line whose end has not been read yet
    too_long = False  # the line being read is over the limit: drop it until its end
    while True:
        block = body.read(READ_BYTES)
        if not block:
            break
        pieces = block.split(b"\n")
        last = pieces.pop()  # after the block's last newline: an unfinished line
        for piece in pieces:
            number += 1
            raw = pending + piece if pending else piece
            pending = b""
            if too_long or len(raw) > MAX_LINE_BYTES:
                too_long = False
                yield number, None
            elif raw.strip():
                yield number, raw
        if not too_long:
            pending = pending + last if pending else last
            if len(pending) > MAX_LINE_BYTES:
                pending, too_long = b"", True
    if pending or too_long:
        number += 1
        if too_long:
            yield number, None
        elif pending.strip():
            yield number, pending


def _checked(body) -> Iterator[tuple[int, str, object]]:
    """Each line read, parsed and checked, without the database: (number, "error", answer)
    for a line refused, (number, "order", (line, item)) for an order ready for its batch
    (orders_import), (number, "customer", line); then (number, "truncated", None) if the body
    has more than MAX_LINES lines."""
    for number, raw in _read_lines(body):
        if number > MAX_LINES:
            yield number, "truncated", None
            return
        if raw is None:
            message = f"is longer than {MAX_LINE_BYTES} bytes"
            yield number, "error", _refused(number, errors=[{"field": "line", "message": message}])
            continue
        try:
            # UTF-8 as RFC 8259 says and the JSON calls read it (json.loads of bytes also
            # guessed UTF-16 and UTF-32).
            data = json.loads(
                raw.decode("utf-8"), parse_constant=_no_constant, object_pairs_hook=_no_duplicates
            )
        except (ValueError, UnicodeDecodeError, RecursionError):
            errors = [{"field": "line", "message": "is not a JSON object"}]
            yield number, "error", _refused(number, errors=errors)
            continue
        kind = data.get("type") if isinstance(data, dict) else None
        model = _KINDS.get(kind) if isinstance(kind, str) else None
        if model is None:
            errors = [{"field": "type", "message": 'must be "customer" or "order"'}]
            yield number, "error", _refused(number, errors=errors)
            continue
        try:
            line = model.model_validate(data)
        except ValidationError as error:
            yield number, "error", _refused(number, kind, errors=_errors(error))
            continue
        if kind == "customer":
            yield number, "customer", line
            continue
        try:
            item = order_import_check(
                ImportedOrder(
                    draft=_order_draft(line),
                    # 0 until the batch finds the customer with this external_id.
                    customer_id=line.customer_id or 0,
                    status=line.status,
                    refunded_amount=line.refunded_amount,
                )
            )
        except OrderError as error:
            errors = _error_of(error)
            yield number, "error", _refused(number, "order", number=line.number, errors=errors)
            continue
        yield number, "order", (line, item)


def _ahead(items: Iterator, limit: int, turn: "_Turn") -> Iterator:
    """`items`, produced by a thread up to `limit` items ahead of the caller, only while
    `turn` is set.

    Why: a batch's statements keep the worker waiting on PostgreSQL, and reading, parsing
    and checking the next lines (_checked: CPU in Python, no database) can use that time on
    the other core (psycopg lets go of the GIL while it waits). Only work that does not
    depend on the database goes ahead: each batch still reads what the batches before it
    committed (an order created earlier in the file and changed by a later line is found).

    `turn`: the caller sets it while it waits on a statement (_statements_let_ahead) and
    while it waits here for items, and clears it when it runs Python again, so that the
    thread does not hold the GIL while the caller needs it. Without it (the thread always
    running), the caller waited for the GIL after each of the many round trips of a batch
    (each COPY's blocks): measured at a load of 4 to 8 on two cores, the import was about a
    quarter slower in wall time although its main thread spent 40% less CPU.

    Items come out in the thread's order; an exception the thread raised comes out after
    the items before it. Closing this generator stops the thread and waits for it (it may be
    in the middle of reading a block of the body: nothing else may read the body meanwhile).
    Memory: at most `limit` items ahead, as the batch being applied holds at most BATCH."""
    ready: deque = deque()
    state = {"done": False, "error": None, "stop": False}
    change = threading.Condition()
    language = translation.get_language()

    def produce():
        try:
            with translation.override(language):
                while True:
                    turn.wait()
                    if state["stop"]:  # the caller closed: read no further
                        return
                    item = next(items, _END)
                    if item is _END:
                        return
                    with change:
                        while len(ready) >= limit and not state["stop"]:
                            change.wait()
                        if state["stop"]:
                            return
                        ready.append(item)
                        change.notify()
        except BaseException as error:  # handed to the caller, raised there
            state["error"] = error
        finally:
            items.close()
            with change:
                state["done"] = True
                change.notify()

    thread = threading.Thread(target=produce, name="import-reader", daemon=True)
    thread.start()
    try:
        while True:
            with change:
                if not ready and not state["done"]:
                    turn.set()
                    while not ready and not state["done"]:
                        change.wait()
                    turn.clear()
                if not ready:
                    break
                item = ready.popleft()
                if len(ready) == limit // 2:  # room again: wake a waiting thread once
                    change.notify()
            yield item
        if state["error"] is not None:
            raise state["error"]
    finally:
        with change:
            state["stop"] = True
            change.notify()
        turn.set()
        thread.join()


_END = object()


class _Turn:
    """When the reading thread (_ahead) may run: while at least one holder has set it (the
    import waiting for lines, a batch waiting on a statement). An Event that counts its
    holders, since two batches may wait on statements at once (_Applying)."""

    def __init__(self):
        self._holders = 0
        self._change = threading.Condition()

    def set(self) -> None:
        with self._change:
            self._holders += 1
            self._change.notify_all()

    def clear(self) -> None:
        with self._change:
            self._holders -= 1

    def wait(self) -> None:
        with self._change:
            while self._holders <= 0:
                self._change.wait()


def _statements_let_ahead(turn: _Turn):
    """An execute wrapper: the reading thread's turn while a statement runs."""

    def wrapper(execute, sql, params, many, context):
        turn.set()
        try:
            return execute(sql, params, many, context)
        finally:
            turn.clear()

    return wrapper


class _Stopped(Exception):
    """The import stopped before this batch's turn to commit: it is rolled back."""


class _Applying:
    """A batch applied by a thread of its own (_Appliers), on a database connection of its
    own, so that it writes its orders while the batch before it updates its customers
    (PostgreSQL).

    Why: most of a batch's time is PostgreSQL rewriting its customers' rows (the
    statistics' UPDATE), during which the worker only waited; now the next batch's Python
    and its COPYs run meanwhile, on the other core. What stays in order: a batch touches its
    customers' rows, and commits, only once the batch before it is committed and its answers
    are written (`go`, set by the import: orders_import's wait_turn). So the batches' locks
    on customers are taken one batch after the other (no deadlock between them), every
    statistics UPDATE starts from the one before it, and a batch committed is a batch whose
    predecessors were answered, as when they ran one after the other. Two batches in flight
    never share an order number (the import waits for the first one then)."""

    def __init__(self, batch: _OrderBatch, previous: "_Applying | None"):
        self.batch = batch
        self.numbers = set(batch.numbers)
        self.after: list[dict] = []  # answers to the lines read after it, before the next batch
        self.go = threading.Event()  # its turn to touch its customers and commit
        self.done = threading.Event()
        self.next: _Applying | None = None
        self.stopped = False
        self._answers: list[dict] = []
        self._error: BaseException | None = None
        if previous is None:
            self.go.set()
        else:
            previous.next = self

    def _wait_turn(self) -> None:
        self.go.wait()
        if self.stopped:
            raise _Stopped

    def apply(self) -> None:
        """In an applier's thread."""
        try:
            self._answers = self.batch.apply(self._wait_turn)
        except BaseException as error:  # handed to the import, raised there
            self._error = error
        finally:
            self.batch = None
            self.done.set()

    def answers(self) -> list[dict]:
        """Its answers once committed (the error it stopped on is raised here)."""
        self.done.wait()
        if self._error is not None:
            raise self._error
        return self._answers + self.after

    def stop(self) -> None:
        """Roll it back unless it is past its turn."""
        self.stopped = True
        self.go.set()


class _Appliers:
    """Two threads applying batches in turn (_Applying), each on its own connection for the
    whole import (a new connection per batch cost PostgreSQL a backend's start-up and
    catalog reads each time)."""

    def __init__(self, turn: _Turn):
        self._queues = [queue.SimpleQueue(), queue.SimpleQueue()]
        self._next = 0
        language = translation.get_language()
        self._threads = [
            threading.Thread(
                target=self._serve, args=(jobs, turn, language), name="import-batch", daemon=True
            )
            for jobs in self._queues
        ]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _serve(jobs: queue.SimpleQueue, turn: _Turn, language: str) -> None:
        try:
            with (
                translation.override(language),
                connection.execute_wrapper(_statements_let_ahead(turn)),
            ):
                while (job := jobs.get()) is not None:
                    job.apply()
        finally:
            connection.close()  # this thread's own connection

    def start(self, job: _Applying) -> None:
        """Hand a batch to the thread that is not applying the one before it."""
        self._queues[self._next].put(job)
        self._next = 1 - self._next

    def close(self) -> None:
        for jobs in self._queues:
            jobs.put(None)
        for thread in self._threads:
            thread.join()


def _run(body, outcome: dict) -> Iterator[bytes]:
    """The answer, a piece per batch; `outcome["complete"]` is set before the summary line
    (not when the import stopped midway). `body`: what the lines are read from (`read`)."""
    counts = {"created": 0, "updated": 0, "unchanged": 0, "error": 0}
    batch = _OrderBatch()
    # PostgreSQL outside a transaction: each batch on a connection of its own, overlapping
    # the one before it (_Applying). Inside a caller's transaction (nothing could commit
    # batch by batch) or on SQLite (one writer at a time), one batch after the other here.
    overlap = connection.vendor == "postgresql" and not connection.in_atomic_block
    applying: _Applying | None = None  # the last batch handed to an applier
    appliers: _Appliers | None = None

    def emit(answers):
        """The answers as one piece of the response (one write to the socket per batch,
        not per line)."""
        if not answers:
            return
        for answer in answers:
            counts[answer["result"]] += 1
        yield "".join(_encode(answer) + "\n" for answer in answers).encode()

    truncated = False
    turn = _Turn()
    checked = _ahead(_checked(body), AHEAD, turn)
    let_ahead = _statements_let_ahead(turn)

    def run(apply, *args):
        with connection.execute_wrapper(let_ahead):
            return apply(*args)

    def answered(job: _Applying):
        """A batch's answers written once it is committed; then the next one may commit."""
        yield from emit(job.answers())
        if job.next is not None:
            job.next.go.set()

    def flush():
        """Apply the batch being filled, and write the answers of the one before it."""
        nonlocal batch, applying, appliers
        full, batch = batch, _OrderBatch()
        if not overlap:
            yield from emit(run(full.apply))
            return
        previous, applying = applying, None
        if previous is not None and previous.numbers & full.numbers:
            # An order of the batch in flight again: written once that one is committed.
            yield from answered(previous)
            previous = None
        applying = _Applying(full, previous)
        if appliers is None:
            appliers = _Appliers(turn)
        appliers.start(applying)
        if previous is not None:
            yield from answered(previous)

    def drain():
        nonlocal applying
        if applying is not None:
            job, applying = applying, None
            yield from answered(job)

    people = _CustomerGroup()

    def apply_people():
        if people:
            yield from emit(run(people.apply))

    try:
        for number, what, value in checked:
            if what == "truncated":
                truncated = True
                break
            if what == "error":
                if people:
                    people.ready.append(value)  # after the customers read before it
                elif applying is not None and not batch:
                    applying.after.append(value)  # after the batch in flight
                else:
                    yield from emit(batch.answered(value))
            elif what == "order":
                yield from apply_people()  # committed before an order may name them
                line, item = value
                if item.draft.number in batch.numbers:
                    yield from flush()  # the same order again: after the first
                batch.add(number, line, item)
                if len(batch) >= BATCH:
                    yield from flush()
            else:
                if batch:
                    yield from flush()  # in the file's order: its orders first
                yield from drain()
                people.add(number, value)
                if len(people) >= PEOPLE:
                    yield from apply_people()
        yield from apply_people()
        if batch:
            yield from flush()
        yield from drain()
    except Exception as error:
        # The answer has started: a problem document cannot replace it. What was answered is
        # stored; say where it stopped.
        if isinstance(error, _BodyCut):
            logger.warning("Bulk import: the body ended early (%s)", error)
            problem = {
                "error": "body-incomplete",
                "detail": f"The body ended after {error} (the connection dropped?): the lines "
                "answered above were applied, the others were not; send the file again.",
            }
        else:
            logger.exception("Bulk import failed")
            problem = {
                "error": "server-error",
                "detail": "The import stopped here; the lines answered above were "
                "applied, the others were not.",
            }
        if applying is not None and applying.go.is_set():
            # A batch whose turn came (the one before it was answered) commits: answer it.
            job, applying = applying, None
            try:
                yield from emit(job.answers())
            except Exception:
                logger.exception("Bulk import: the batch in flight failed too")
        yield (json.dumps(problem) + "\n").encode()
        return
    finally:
        if applying is not None:
            applying.stop()
        if appliers is not None:
            appliers.close()
        checked.close()
    summary = {"summary": counts}
    if truncated:
        summary["truncated"] = True
        summary["detail"] = f"Only the first {MAX_LINES} lines were read; send the rest again."
    outcome["complete"] = True
    yield (json.dumps(summary) + "\n").encode()


def _recorded(
    answer: Iterator[bytes], outcome: dict, claim: Claim, body: HashedBody
) -> Iterator[bytes]:
    """The answer as _run writes it, kept for the Idempotency-Key's retries: stored once
    complete, the key freed if the import stops midway (an error, the client gone)."""
    try:
        with claim.held():
            for piece in answer:
                claim.answered(piece)
                yield piece
    finally:
        answer.close()
        if outcome.get("complete"):
            try:
                stored = claim.finish(
                    fingerprint=body.fingerprint(), status_code=200, content_type=NDJSON
                )
            except Exception:  # the answer is written: a retry will run the import again
                logger.exception("Bulk import: its answer could not be stored for its key")
                claim.release()
            else:
                if not stored:
                    logger.warning(
                        "Bulk import: its Idempotency-Key was taken over (not renewed for "
                        "STOREFRONT_API_IDEMPOTENCY_LEASE seconds); its answer is not stored"
                    )
        else:
            claim.release()


def _inline(schema: dict) -> dict:
    """A model's JSON schema with its nested models written in place (no $ref to resolve)."""
    defs = schema.pop("$defs", {})

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return walk(dict(defs[ref.removeprefix("#/$defs/")]))
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return walk(schema)


@router.post(
    "",
    auth=[ApiKeyAuth(Scope.ORDERS_WRITE)],
    url_name="import",
    summary="Import customers and orders (NDJSON, answered line by line)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                NDJSON: {
                    "schema": {
                        "description": "One of these objects per line.",
                        "oneOf": [
                            _inline(CustomerImport.model_json_schema()),
                            _inline(OrderImport.model_json_schema()),
                        ],
                    }
                }
            },
        },
        "responses": {
            200: {
                "description": "One line per input line: {line, result: created | updated | "
                "unchanged | error, type, id or number, errors}, then {summary}.",
                "content": {NDJSON: {"schema": {"type": "object"}}},
            }
        },
    },
)
@call_options(max_body=MAX_BODY, content_types=(NDJSON,), atomic=False)
def import_ndjson(request):
    """A shop's history, one JSON object per line: `{"type": "customer", ...}` (matched on
    external_id, else email: created, updated or unchanged; `created_at`, the day the account
    was opened on the shop, is taken when the customer is created) or `{"type": "order", ...}` (an
    order as POST /orders takes it, plus `status` and `refunded_amount`, with `placed_at`
    required; matched on its number). At most 10,000 lines of 64 KiB. Lines are applied in
    the file's order; put a customer's line before its orders. With an `Idempotency-Key`, a
    retry of a finished import gets the first answer back and applies nothing (409 while the
    first is still running)."""
    length = int(request.META.get("CONTENT_LENGTH") or 0)  # digits (storefront/calls.py)
    if length == 0:  # "00" too
        raise Problem(
            "validation",
            "The body is empty: send one JSON object per line.",
            errors=[{"field": "body", "message": "is required"}],
        )
    key = key_from(request)
    outcome = {}
    if key is None:
        answer = _run(_Whole(request, length), outcome)
    else:
        body = HashedBody(request)
        try:
            claim = idempotency_claim(caller=request.auth, key=key)
        except Problem:
            # 409 while another import holds the key: the body is read (and dropped) first, or
            # a client still sending it would meet a closed connection, not the answer.
            while request.read(READ_BYTES):
                pass
            raise
        if not isinstance(claim, Claim):
            return claim.replay(body)
        answer = _recorded(_run(_Whole(body, length), outcome), outcome, claim, body)
    response = StreamingHttpResponse(answer, content_type=NDJSON)
    response["Cache-Control"] = "no-store"
    return response
