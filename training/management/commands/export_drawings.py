from pathlib import Path

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Write labeled drawings as the 28x28 inputs the model sees, with their labels, to an .npz file; "
        "a corrected number drawing as one input per digit (its box), ids <drawing id>/<place>."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", type=Path, help="the .npz file to write (arrays x, y, ids)")
        parser.add_argument("--include-not-a-digit", action="store_true", help="keep label 10, not a digit")

    def handle(self, *args, **options) -> None:
        from training.reviewed import export

        path = options["path"]
        path = path if path.suffix == ".npz" else path.with_name(f"{path.name}.npz")  # numpy's own rule
        if not path.parent.is_dir():
            raise CommandError(f"no folder {path.parent} to write {path.name} in")
        examples, drawings = export(path, options["include_not_a_digit"])
        self.stdout.write(self.style.SUCCESS(f"{examples} examples of {drawings} labeled drawings written to {path}"))
