"""`lhpn`: the operator command. It works through the services' APIs as an admin, through a
service's own operator entry point (`python -m aggregation rebuild`), through RabbitMQ's
management API or `rabbitmqctl` for the broker accounts, and — for backups alone — directly
with the databases.

lhpn units load --national 2025              the whole country, before and after 1/7/2025
lhpn units load --csv units.csv              a tree of your own
lhpn units reorganise changes.json           one reorganisation, or a list of them
lhpn plans import plan.json                  publish a plan (targets, report calendar)
lhpn broker add-system lhpn-sys-hotline --unit 555 --event case.opened.v1
lhpn reminders sweep --as-of 2021-11-04T08:00:00+07:00
lhpn aggregation rebuild                     replay aggregation's archive into its read models
lhpn aggregation reroute                     partitions: rebuild all from their events routed again
lhpn dead-letters list                       each DLQ: messages, reasons
lhpn dead-letters replay intake.inbound --reason "unknown unit_id"
lhpn backup create /backups/2025-01-31       every service's database, gzip BSON
lhpn backup restore /backups/2025-01-31 --drop
lhpn docs                                    OpenAPI and AsyncAPI documents into docs/api/
lhpn users create ha.nguyen --role district_staff --unit 555    password printed once
lhpn users list | disable | enable | reset-password | set-role
lhpn keys create hotline --unit 555 --event case.opened.v1      the key printed once
lhpn keys list | revoke KEY_ID
"""

from __future__ import annotations

import typer

from .aggregation_cmd import aggregation_app
from .backup_cmd import backup_app
from .broker_cmd import broker_app
from .dead_letters_cmd import dead_letters_app
from .docs_cmd import docs
from .keys_cmd import keys_app
from .plans_cmd import plans_app
from .reminders_cmd import reminders_app
from .units_cmd import units_app
from .users_cmd import users_app

app = typer.Typer(
    help="Công cụ vận hành LHPN — the operator command: units, plans, users and API keys, broker "
    "accounts of other systems, reminder sweeps, aggregation rebuilds, backups, dead letters and "
    "the API documents.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(units_app, name="units")
app.add_typer(plans_app, name="plans")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(broker_app, name="broker")
app.add_typer(reminders_app, name="reminders")
app.add_typer(aggregation_app, name="aggregation")
app.add_typer(backup_app, name="backup")
app.add_typer(dead_letters_app, name="dead-letters")
app.command("docs")(docs)


def main() -> None:
    app()
