from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from recognizer import retention


class Command(BaseCommand):
    help = (
        "Delete unreviewed drawings older than DAYS days, in batches. Labelled drawings and model "
        "versions are kept. Beat runs the same every day with RETAIN_DAYS."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--older-than",
            type=int,
            metavar="DAYS",
            default=settings.RETAIN_DAYS,
            help="age in days past which unreviewed drawings are deleted (default: RETAIN_DAYS)",
        )

    def handle(self, *args, **options) -> None:
        days = options["older_than"]
        if days <= 0:
            raise CommandError("give --older-than DAYS, at least 1 (RETAIN_DAYS=0 keeps every drawing)")
        count = retention.purge(days)
        self.stdout.write(self.style.SUCCESS(f"{count} unreviewed drawings older than {days} days deleted"))
