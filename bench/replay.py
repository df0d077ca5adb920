"""Replay bench_load's read mix through Django's test client and report CPU per request.

    DATABASE_URL=postgres://… SECRET_KEY=x DEBUG=0 DEV_APPS=0 STATIC_ROOT=/tmp/static \\
        .venv/bin/python -m bench.replay cpu [--rounds 5]

(`collectstatic` into STATIC_ROOT first: DEBUG off serves hashed file names from a manifest.)
The URLs are bench_load's own (its URL builder, seeded, so that runs compare), requested as a
Staff user in the process itself: no gunicorn, no wrk, no network, so the CPU measured is the
request's handling alone. Modes:

- `cpu`: thread CPU time per request, per kind of page (median of rounds of the mean per
  kind), and the mix weighted as bench_load's (30/20/30/20).
- `calls`: Python function calls per request, per kind (cProfile's count: it does not depend
  on the machine's load).
- `profile KIND`: cProfile of that kind's requests, the functions that cost most.
- `dump DIR`: every page's HTML (CSRF tokens and CSP nonces blanked) and its queries, in
  DIR, to compare two versions of the code byte for byte (`diff -r`).
"""

import argparse
import cProfile
import hashlib
import json
import os
import pstats
import random
import re
import statistics
import sys
import time
from pathlib import Path

import django

KINDS = ("list", "search", "client", "order")
WEIGHTS = {"list": 30, "search": 20, "client": 30, "order": 20}
USERNAME = "bench-replay-staff"
# In the queries: the session's key and the current time (the session's expiry, the access log).
_QUERY_VOLATILE = (
    (re.compile(r"'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?(\+00:00)?'"), "'<now>'"),
    (re.compile(r'"session_key" = \'[a-z0-9]+\''), "\"session_key\" = '<key>'"),
)
_VOLATILE = (
    (re.compile(rb'name="csrfmiddlewaretoken" value="[^"]+"'), b'name="csrfmiddlewaretoken"'),
    (re.compile(rb'nonce="[^"]+"'), b'nonce=""'),
    (re.compile(rb'"X-CSRFToken": "[^"]+"'), b'"X-CSRFToken": ""'),
    (re.compile(rb'name="csrf-token" content="[^"]+"'), b'name="csrf-token"'),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["cpu", "calls", "profile", "dump"])
    parser.add_argument("arg", nargs="?", help="profile: the kind; dump: the directory")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--sample", type=int, default=500)
    parser.add_argument("--per-kind", type=int, default=200, help="URLs replayed per kind")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--language", default="", help="a language cookie (fr)")
    parser.add_argument("--sort", default="tottime", help="profile: pstats sort key")
    parser.add_argument("--lines", type=int, default=45)
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backoffice.settings")
    django.setup()

    from django.conf import settings
    from django.test import Client
    from django.test.utils import override_settings

    kinds = [k for k in options.kinds.split(",") if k]
    urls = replay_urls(options.seed, options.sample, options.per_kind, kinds)
    client = Client()
    client.force_login(staff_user())
    if options.language:
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = options.language
    hosts = [*settings.ALLOWED_HOSTS, "testserver"]
    with override_settings(ALLOWED_HOSTS=hosts):
        # Warm up: templates, compiled queries, per-process caches, the database's cache.
        for kind in kinds:
            for url in urls[kind]:
                check(client.get(url), url)
        if options.mode == "cpu":
            measure_cpu(client, urls, kinds, options.rounds)
        elif options.mode == "calls":
            count_calls(client, urls, kinds)
        elif options.mode == "profile":
            profile(client, urls[options.arg], options.sort, options.lines)
        else:
            dump(client, urls, kinds, Path(options.arg))


def replay_urls(seed: int, sample: int, per_kind: int, kinds: list[str]) -> dict[str, list]:
    """bench_load's URLs of each kind, drawn with a seeded generator."""
    from bench.management.commands.bench_load import Command

    command = Command()
    command.rng = random.Random(seed)
    _, mix = command.build_paths(sample, list(KINDS))
    draws = {kind: random.Random(f"{seed}-{kind}") for kind in kinds}
    return {kind: [draws[kind].choice(mix[kind]) for _ in range(per_kind)] for kind in kinds}


def staff_user():
    from django.contrib.auth.models import Group, User

    user, created = User.objects.get_or_create(username=USERNAME)
    if created:
        user.set_unusable_password()
        user.save()
        user.groups.add(Group.objects.get(name="Staff"))
    return user


def check(response, url: str) -> None:
    if response.status_code != 200:
        sys.exit(f"{url} answered {response.status_code}")


def measure_cpu(client, urls, kinds, rounds: int) -> None:
    per_kind = {kind: [] for kind in kinds}
    for _ in range(rounds):
        for kind in kinds:
            started = time.thread_time()
            for url in urls[kind]:
                client.get(url)
            per_kind[kind].append((time.thread_time() - started) * 1000 / len(urls[kind]))
    load = os.getloadavg()[0]
    result = {}
    for kind in kinds:
        values = per_kind[kind]
        result[kind] = statistics.median(values)
        print(
            f"{kind:7} median {result[kind]:.2f} ms, min {min(values):.2f}, "
            f"rounds {' '.join(f'{v:.2f}' for v in values)}"
        )
    if set(kinds) == set(KINDS):
        mix = sum(result[k] * WEIGHTS[k] for k in kinds) / sum(WEIGHTS.values())
        print(f"mix     {mix:.2f} ms per request (load {load:.2f})")


def count_calls(client, urls, kinds) -> None:
    for kind in kinds:
        profiler = cProfile.Profile()
        profiler.enable()
        for url in urls[kind]:
            client.get(url)
        profiler.disable()
        calls = sum(v[1] for v in pstats.Stats(profiler).stats.values())
        print(f"{kind:7} {calls / len(urls[kind]):,.0f} calls per request")


def profile(client, urls, sort: str, lines: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for url in urls:
        client.get(url)
    profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats(sort).print_stats(lines)


def dump(client, urls, kinds, directory: Path) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    directory.mkdir(parents=True, exist_ok=True)
    index = {}
    for kind in kinds:
        for url in dict.fromkeys(urls[kind]):
            with CaptureQueriesContext(connection) as queries:
                response = client.get(url)
            check(response, url)
            body = response.content
            for pattern, blank in _VOLATILE:
                body = pattern.sub(blank, body)
            name = hashlib.sha1(url.encode()).hexdigest()[:16]
            (directory / f"{name}.html").write_bytes(body)
            sqls = []
            for query in queries.captured_queries:
                sql = query["sql"]
                for pattern, blank in _QUERY_VOLATILE:
                    sql = pattern.sub(blank, sql)
                sqls.append(sql)
            index[url] = {"file": name, "queries": sqls}
    (directory / "index.json").write_text(json.dumps(index, indent=1, sort_keys=True))
    print(f"{len(index)} pages in {directory}")


if __name__ == "__main__":
    main()
