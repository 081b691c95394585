"""``manage.py prune [--dry-run]``: apply retention now (the worker's clock does it too)."""

from django.core.management.base import BaseCommand

from common import retention
from common.locks import exclusive


class Command(BaseCommand):
    help = "Delete what retention no longer keeps; --dry-run prints what would be deleted."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true")
        parser.add_argument(
            "--seconds", type=float, default=3600.0, help="Stop after this long (default 1 h)."
        )

    def handle(self, *args, dry_run: bool, seconds: float, **options):
        with exclusive("prune") as held:
            if not held and not dry_run:
                self.stderr.write("Pruning is running elsewhere (a worker); try again later.")
                return
            counts = retention.prune(dry_run=dry_run, seconds=seconds)
        verb = "would delete" if dry_run else "deleted"
        for name, count in counts.items():
            self.stdout.write(f"{verb} {count} {name}")
