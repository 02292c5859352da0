"""The worker's statements written once: on PostgreSQL one to claim a batch's rows and one to
store them; on both databases the one that counts a task's attempt.

Through the ORM a batch of 16 cost 2 SELECTs to claim and 16 UPDATEs to store, and building
those queries was most of the worker's CPU (bench/RESULTS.md, the profile of issue 20). Here
each is one statement written once; SQLite (the embedded default, one process) keeps the ORM's
queries, which hold the same guarantees there.
"""

from django.core.exceptions import ValidationError
from django.db import connection

from recognition.models import Submission

_TABLE = Submission._meta.db_table


def _column(name: str) -> str:
    return connection.ops.quote_name(Submission._meta.get_field(name).column)


def claim_pending_rows(own_ids: list[str], batch_size: int) -> list[Submission]:
    """The task's own pending rows (all of them, by position, then age), then the oldest other
    pending rows, ``max(batch_size, len(own_ids))`` in all, locked: ``FOR UPDATE SKIP LOCKED``,
    so two workers never claim the same row. Call it inside the transaction that stores them."""
    pk, status, position, created = (_column(n) for n in ("id", "status", "position", "created_at"))
    sql = (
        f"SELECT {pk}, {_column('input28')}, {_column('owner')}, {_column('client_id')}, {_column('word')} "
        f"FROM {connection.ops.quote_name(_TABLE)} "
        f"WHERE {status} = %s "
        f"ORDER BY ({pk} = ANY(%s::uuid[])) DESC, "
        f"CASE WHEN {pk} = ANY(%s::uuid[]) THEN {position} END, {created} "
        "LIMIT %s FOR UPDATE SKIP LOCKED"
    )
    own = [str(i) for i in own_ids]
    with connection.cursor() as cursor:
        cursor.execute(sql, [Submission.Status.PENDING, own, own, max(batch_size, len(own))])
        return [
            Submission(id=row_id, input28=input28, owner_id=owner_id, client_id=client_id, word_id=word_id)
            for row_id, input28, owner_id, client_id, word_id in cursor.fetchall()
        ]


def store_results(rows: list[tuple[Submission, bool]], names: tuple[str, ...]) -> None:
    """Write the fields ``names`` of each (claimed, locked) row in one ``UPDATE ... FROM (VALUES
    ...)``, and count an attempt on each row whose flag is True (the task's own rows were
    counted before the claim)."""
    if not rows:
        return
    fields = [Submission._meta.get_field(name) for name in names]
    pk = Submission._meta.pk
    casts = [pk.db_type(connection)] + [f.db_type(connection) for f in fields] + ["integer"]
    row_sql = "(" + ", ".join(f"%s::{cast}" for cast in casts) + ")"
    params: list = []
    for row, count_attempt in rows:
        params.append(pk.get_db_prep_value(row.pk, connection))
        params += [f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields]
        params.append(1 if count_attempt else 0)
    columns = [f.column for f in fields]
    quote = connection.ops.quote_name
    attempts = quote(Submission._meta.get_field("attempts").column)
    sql = (
        f"UPDATE {quote(_TABLE)} AS s SET "
        + ", ".join(f"{quote(n)} = v.{quote(n)}" for n in columns)
        + f", {attempts} = s.{attempts} + v.attempt "
        + "FROM (VALUES "
        + ", ".join([row_sql] * len(rows))
        + f") AS v({quote('id')}, "
        + ", ".join(quote(n) for n in columns)
        + f", attempt) WHERE s.{quote(pk.column)} = v.{quote('id')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def count_attempt(submission_id: str) -> bool:
    """Count one attempt on the row if it is pending; whether it was (one ``UPDATE``, the same
    SQL on PostgreSQL and SQLite: the ORM's building of it was 8 % of a worker's CPU at
    concurrency 1, bench/RESULTS.md, issue 20)."""
    pk = Submission._meta.pk
    try:
        key = pk.get_db_prep_value(pk.to_python(submission_id), connection)
    except ValidationError:  # not a uuid: no such row
        return False
    attempts, status = _column("attempts"), _column("status")
    sql = (
        f"UPDATE {connection.ops.quote_name(_TABLE)} SET {attempts} = {attempts} + 1 "
        f"WHERE {connection.ops.quote_name(pk.column)} = %s AND {status} = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [key, Submission.Status.PENDING.value])
        return cursor.rowcount > 0
