"""A benchmark's own database on the server it is pointed at: created on demand, dropped after."""

from __future__ import annotations

import argparse

import psycopg


def bench_dsn(dsn: str, in_place: bool, suffix: str = "bench") -> str:
    """``dsn`` itself (``in_place``), else a database ``<name>_<suffix>`` beside it, created if missing."""
    if in_place:
        return dsn
    base, name = dsn.rsplit("/", 1)
    target = f"{name.split('?')[0]}_{suffix}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target,)).fetchone():
            conn.execute(f'CREATE DATABASE "{target}"')
    return f"{base}/{target}"


def drop_bench_db(dsn: str) -> None:
    base, name = dsn.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench_parser(doc: str | None) -> argparse.ArgumentParser:
    """A benchmark's argument parser: its docstring as the description, and ``--dsn``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", required=True, help="postgresql://… of the server to benchmark on")
    return parser
