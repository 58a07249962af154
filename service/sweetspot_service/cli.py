"""``sweetspot-serve``: run the service with uvicorn. Flags mirror ``SWEETSPOT_*`` settings."""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic_settings import CliApp, SettingsConfigDict

from sweetspot_service.core.config import Settings
from sweetspot_service.main import create_app


class CliSettings(Settings):
    model_config = SettingsConfigDict(
        env_prefix="SWEETSPOT_",
        extra="forbid",
        cli_prog_name="sweetspot-serve",
        cli_kebab_case=True,
        cli_implicit_flags=True,
    )


def main(argv: list[str] | None = None) -> None:
    settings = CliApp.run(CliSettings, cli_args=sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
