from django.core.management.base import BaseCommand


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
        from training.retraining import mnist_digits, retrain  # TensorFlow: only when this command runs

        outcome = retrain(
            epochs=options["epochs"],
            weight=options["weight"],
            digits=mnist_digits(options["mnist_limit"]),
            holdout=options["holdout"],
            seed=options["seed"],
            force=options["force"],
            promote=not options["no_promote"],
            log=self.stdout.write,
        )
        state = "activated" if outcome.promoted else "registered, not activated"
        self.stdout.write(self.style.SUCCESS(f"{outcome.version.version} {state} ({outcome.reason})"))
