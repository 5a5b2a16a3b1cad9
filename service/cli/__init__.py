"""The `parley` command: a peer of the HTTP API and the web page over the query layer (service/queries)."""

from service.cli.commands import cli, main

__all__ = ["cli", "main"]
