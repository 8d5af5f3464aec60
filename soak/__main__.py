"""`python -m soak`: run the soak, print its summary, exit 1 on any violation (see soak/__init__).

python -m soak                      # 120 s of traffic, 2 worker kills, SQLite
python -m soak --seconds 20 --kills 1
python -m soak --mongodb-uri 'mongodb://127.0.0.1:27017/?replicaSet=rs0'
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

from pymongo import MongoClient
from pymongo.uri_parser import parse_uri

from soak.run import SoakConfig, run
from soak.service import Faults
from soak.traffic import Mix


def fresh_database(uri: str) -> str:
    """The URI pointed at a new database, so a soak never shares one."""
    head, sep, query = uri.partition("?")
    scheme, _, rest = head.partition("://")
    hosts = rest.split("/", 1)[0]
    return f"{scheme}://{hosts}/smspay_soak_{uuid.uuid4().hex[:12]}{sep}{query}"


def main(argv: list[str] | None = None) -> int:
    """Parse options, run, print the summary; the exit status is the verdict."""
    parser = argparse.ArgumentParser(prog="python -m soak", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=120, help="how long to send (120)")
    parser.add_argument("--max-sms", type=int, default=5000, help="send at most this many (5000)")
    parser.add_argument("--rate", type=float, default=8, help="new SMS per second (8)")
    parser.add_argument("--senders", type=int, default=4, help="sending threads (4)")
    parser.add_argument("--users", type=int, default=20, help="registered users (20)")
    parser.add_argument("--kills", type=int, default=2, help="worker SIGKILLs (2)")
    parser.add_argument("--duplicates", type=int, default=30, help="percent sent twice (30)")
    parser.add_argument("--fail-percent", type=int, default=10, help="gateway calls failing (10)")
    parser.add_argument(
        "--lost-percent", type=int, default=30, help="of failed creates, percent that paid (30)"
    )
    parser.add_argument("--drain-seconds", type=float, default=240, help="wait at most (240)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mongodb-uri", default="", help="soak MongoDB (a fresh database in it)")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="soak: %(message)s")

    data_dir = Path(tempfile.mkdtemp(prefix="smspay-soak-"))
    mongodb_uri = fresh_database(args.mongodb_uri) if args.mongodb_uri else ""
    config = SoakConfig(
        data_dir=data_dir,
        seconds=args.seconds,
        max_sms=args.max_sms,
        users=args.users,
        senders=args.senders,
        rate=args.rate,
        kills=args.kills,
        drain_seconds=args.drain_seconds,
        seed=args.seed,
        mongodb_uri=mongodb_uri,
        mix=Mix(duplicates=args.duplicates),
        faults=Faults(
            fail_percent=args.fail_percent, lost_percent=args.lost_percent, seed=args.seed
        ),
    )
    print(f"soak: sending for {args.seconds:.0f} s to 127.0.0.1 (data in {data_dir})", flush=True)
    report = run(config)
    print(report.text(), flush=True)
    if report.passed and not args.keep:
        shutil.rmtree(data_dir, ignore_errors=True)
        if mongodb_uri:
            client: MongoClient[dict[str, object]]
            with MongoClient(mongodb_uri, serverSelectionTimeoutMS=5000) as client:
                client.drop_database(parse_uri(mongodb_uri)["database"])
    elif not report.passed:
        print(f"soak: the data directory is kept for a look: {data_dir}", file=sys.stderr)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
