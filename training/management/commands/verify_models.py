from django.core.management.base import BaseCommand, CommandError

from recognizer.models import ModelVersion


class Command(BaseCommand):
    help = (
        "Load model versions' LiteRT exports back from the database, predict fixed inputs and compare with the "
        "Keras model, as registering does (a version without an export is exported first). Only a version that "
        "passed can be activated; versions registered before checks or exports existed need this once."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("versions", nargs="*", help="version names (default: every version not checked yet)")

    def handle(self, *args, **options) -> None:
        from training.retraining import verify  # TensorFlow: only when this command runs

        names = options["versions"]
        unchecked = ModelVersion.objects.filter(verified_at__isnull=True)
        versions = ModelVersion.objects.filter(version__in=names) if names else unchecked
        if missing := set(names) - {v.version for v in versions}:
            raise CommandError(f"no such version: {', '.join(sorted(missing))}")
        failed = 0
        for version in versions:
            if verify(version):
                self.stdout.write(self.style.SUCCESS(f"{version.version}: passed, can be activated"))
            else:
                failed += 1
                self.stdout.write(self.style.ERROR(f"{version.version}: failed ({version.verification['error']})"))
        if failed:
            raise CommandError(f"{failed} version(s) failed the check")
