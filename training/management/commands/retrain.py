import math

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Fine-tune the active model on MNIST plus reviewed drawings, register the new version, "
        "and activate it unless it is worse on MNIST test or held-out reviewed drawings (--force)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--epochs", type=int, default=1)
        parser.add_argument("--weight", type=float, default=20.0, help="weight of a reviewed drawing vs. an MNIST one")
        parser.add_argument(
            "--mnist-limit",
            type=int,
            default=None,
            help="train on only this many MNIST digits (the test split stays whole)",
        )
        parser.add_argument("--holdout", type=float, default=0.2, help="share of reviewed drawings held out")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--force", action="store_true", help="activate even if it is worse")
        parser.add_argument("--no-promote", action="store_true", help="register without activating")

    def handle(self, *args, **options) -> None:
        check(options)
        from training.retraining import mnist_digits, retrain  # TensorFlow: only when this command runs

        try:
            digits = mnist_digits(options["mnist_limit"])
        except FileNotFoundError as exc:
            raise CommandError(f"MNIST is needed to retrain and to gate the new version: {exc}") from exc
        outcome = retrain(
            epochs=options["epochs"],
            weight=options["weight"],
            digits=digits,
            holdout=options["holdout"],
            seed=options["seed"],
            force=options["force"],
            promote=not options["no_promote"],
            log=self.stdout.write,
        )
        state = "activated" if outcome.promoted else "registered, not activated"
        self.stdout.write(self.style.SUCCESS(f"{outcome.version.version} {state} ({outcome.reason})"))


def check(options: dict) -> None:
    """CommandError for options that would train on nothing, push away from the labels, or register an
    unchanged copy as a new version (which the gate, finding it no worse, would activate)."""
    if options["epochs"] < 1:
        raise CommandError("--epochs must be at least 1")
    if not (math.isfinite(options["weight"]) and options["weight"] > 0):
        raise CommandError("--weight must be a number above 0")
    if not 0 <= options["holdout"] < 1:
        raise CommandError("--holdout is the share of reviewed drawings held out: at least 0, under 1")
    if options["mnist_limit"] is not None and options["mnist_limit"] < 1:
        raise CommandError("--mnist-limit must be at least 1")
