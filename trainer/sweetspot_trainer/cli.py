"""``sweetspot-train``: GRPO with prompts chosen by Sweetspot. ``--help`` lists every flag."""

from __future__ import annotations

import logging
import sys

from pydantic_settings import CliApp
from transformers.utils import logging as transformers_logging

from sweetspot_trainer.config import TrainConfig
from sweetspot_trainer.train import run, summary


def main(argv: list[str] | None = None) -> None:
    cfg = CliApp.run(TrainConfig, cli_args=sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=cfg.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if cfg.log_level != "debug":
        transformers_logging.disable_progress_bar()  # "Loading weights" of each model
    records = run(cfg)
    print(summary(records, cfg.output_dir))


if __name__ == "__main__":
    main()
