"""`vigil collector school add CODE NAME`, `school list` and `account scope USERNAME`: the schools
of a trust (issue 18). A device takes its school from its enrolment token (`enrol-token
--school CODE`); an account scoped to a school sees only that school's devices, events and
incidents in the dashboard (dashboard/scope.py), and with --years only those year groups' events
(a deputy DSL for Year 7). A collector with no schools is one school."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register_school_parsers", "register_scope_parser"]

_ADD_HELP = """\
Add a school to the trust. CODE (letters, digits, - or _, kept in capitals) is what enrolment
tokens and accounts name; NAME is shown in the dashboard. Schools are not deleted."""

_SCOPE_HELP = """\
Scope a dashboard account (a keyholder's or a governor's) to one school with --school CODE, or
to the whole trust with --trust (the trust's safeguarding lead). Within a school, --years 7,8
limits it to the events of those year groups (from cohort tags: untagged events are then not
seen); --all-years lifts that; with neither, the account keeps its years. Applies from its next
request."""


def register_school_parsers(sub: Any, data: Any) -> None:
    sch = sub.add_parser("school", help="the schools of a trust")
    ss = sch.add_subparsers(dest="school_command", metavar="ACTION", required=True)
    p = ss.add_parser("add", help="add a school", description=_ADD_HELP)
    data(p)
    p.add_argument("code", metavar="CODE", help="a short code, e.g. NHA")
    p.add_argument("name", metavar="NAME", help="the school's name")
    p.set_defaults(func=_school_add)
    p = ss.add_parser("list", help="list the schools, with their devices and accounts")
    data(p)
    p.set_defaults(func=_school_list)


def register_scope_parser(accs: Any, data: Any) -> None:
    p = accs.add_parser("scope", help="scope an account to one school, or to the whole trust",
                        description=_SCOPE_HELP)
    data(p)
    p.add_argument("username", metavar="USERNAME")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--school", metavar="CODE", default="")
    where.add_argument("--trust", action="store_true", help="the whole trust (no school)")
    years = p.add_mutually_exclusive_group()
    years.add_argument("--years", metavar="LIST", default=None,
                       help="only these year groups of the school, e.g. 7,8 or Reception")
    years.add_argument("--all-years", action="store_true", help="every year group of the scope")
    p.set_defaults(func=_account_scope)


def _school_add(args: argparse.Namespace) -> int:
    from collector.admin import add_school
    from vigil.commands.collector import _database

    with _database(args) as (_, db):
        school = add_school(db, args.code, args.name)
    print(f"school {school.code} ({school.name}) added")
    return 0


def _school_list(args: argparse.Namespace) -> int:
    from sqlalchemy import func
    from sqlmodel import col, select

    from collector.store.models import Account, Device, School
    from vigil.commands.collector import _database

    with _database(args) as (_, db), db.session() as session:
        rows = session.exec(select(School).order_by(School.code)).all()
        devices = dict(session.exec(select(Device.school_id, func.count())
                                    .group_by(Device.school_id)).all())
        accounts = dict(session.exec(select(Account.school_id, func.count())
                                     .group_by(Account.school_id)).all())
        by_years = session.exec(select(Account.school_id, Account.username, Account.years)
                                .where(col(Account.years) != "")
                                .order_by(col(Account.username))).all()
    if not rows:
        print("no schools: this collector is one school (every account sees everything)")
        return 0
    print(f"{'code':<12} {'devices':>7} {'accounts':>8}  name")
    for school in rows:
        print(f"{school.code:<12} {devices.get(school.id, 0):>7} "
              f"{accounts.get(school.id, 0):>8}  {school.name}")
        for school_id, username, years in by_years:
            if school_id == school.id:
                print(f"{'':<12} {'':>7} {'':>8}    {username}: years {years.replace(',', ', ')}")
    print(f"{'(trust)':<12} {devices.get(None, 0):>7} {accounts.get(None, 0):>8}  "
          "devices of no school; accounts that see every school")
    return 0


def _account_scope(args: argparse.Namespace) -> int:
    from collector.admin import set_account_school
    from vigil.commands.collector import _database

    years = "" if args.all_years else args.years
    with _database(args) as (_, db):
        account = set_account_school(db, args.username, "" if args.trust else args.school,
                                     years=years)
    where = f"school {args.school.strip().upper()}" if args.school else "the whole trust"
    if account.years:
        where += ", years " + account.years.replace(",", ", ")
    print(f"account {args.username} now sees {where}" + ("" if account.years else
                                                         (" only" if args.school else "")))
    return 0
