"""`cloudtune cost-limit ...` and `cloudtune providers ...`: the server's spending limit and its
providers."""

from __future__ import annotations

from typing import Annotated

import typer

from cloudtune.cli import common
from cloudtune.cli.common import JsonOpt, call, console, fail, money, print_json

cost_limit = typer.Typer(
    rich_markup_mode=None, help="Show or set the spending limit.", no_args_is_help=True
)
providers = typer.Typer(
    rich_markup_mode=None,
    help="The providers: list, check, set a token or settings.",
    no_args_is_help=True,
)


@cost_limit.command("show")
def show_limit(as_json: JsonOpt = False) -> None:
    """The limit, and what was spent in its period so far."""
    limit = call(lambda c: c.cost_limit())
    if as_json:
        print_json(limit)
        return
    state = "on" if limit.enabled else "off"
    console.print(
        f"{state}: {money(limit.limit_usd)} {limit.period}, action {limit.action}; spent "
        f"{money(limit.spent_usd)} since {limit.period_start[:10]}, "
        f"{money(limit.remaining_usd)} left" + (" — EXCEEDED" if limit.exceeded else ""),
        highlight=False,
    )


@cost_limit.command("set")
def set_limit(
    amount: Annotated[float | None, typer.Option(help="USD per period.")] = None,
    period: Annotated[str | None, typer.Option(help="daily, weekly or monthly.")] = None,
    action: Annotated[
        str | None, typer.Option(help="warn (submit with a warning) or block (refuse).")
    ] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Enforce the limit, or not.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change the limit (only what you name)."""
    changes = {"limit_usd": amount, "period": period, "action": action, "enabled": enabled}
    chosen = {k: v for k, v in changes.items() if v is not None}
    if not chosen:
        raise fail("name something to change: --amount, --period, --action, --enable", code=2)
    limit = call(lambda c: c.set_cost_limit(**chosen))
    print_json(limit) if as_json else show_limit(as_json=False)


@providers.command("list")
def list_providers(as_json: JsonOpt = False) -> None:
    """The providers, whether each can take jobs, and their hardware with prices."""
    found = call(lambda c: c.providers())
    if as_json:
        print_json(found)
        return
    common.table(
        ("provider", "ready", "hardware (USD/hour)", "why not"),
        (
            (
                p.id,
                "yes" if p.available and p.configured else "no",
                ", ".join(f"{h.id} {h.cost_per_hour:g}" for h in p.hardware_profiles),
                p.reason or "",
            )
            for p in found
        ),
    )


@providers.command("validate")
def validate(
    provider: Annotated[str, typer.Argument()] = "replicate", as_json: JsonOpt = False
) -> None:
    """Check the provider's token with the provider (exit 1 if it is refused)."""
    check = call(lambda c: c.validate_provider(provider))
    if as_json:
        print_json(check)
    else:
        console.print(check.detail if check.valid else f"not valid: {check.error or check.detail}")
    if not check.valid:
        raise typer.Exit(code=1)


@providers.command("set-token")
def set_token(
    provider: Annotated[str, typer.Argument()] = "replicate",
    token: Annotated[
        str | None, typer.Option(help="Prompted (hidden) when left out.", envvar=None)
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Save the provider's API token on the server (stored encrypted, never shown again)."""
    secret = token or typer.prompt(f"{provider} API token", hide_input=True)
    state = call(lambda c: c.set_provider_token(secret, provider))
    if as_json:
        print_json(state)
        return
    console.print("token saved" + (f", but: {state.error}" if state.error else ""))


@providers.command("set")
def set_settings(
    provider: str,
    setting: Annotated[
        list[str], typer.Argument(help="name=value; a value that is JSON is read as JSON.")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Change a provider's settings, e.g. `providers set replicate webhook_url=https://…`."""
    import json

    changes: dict[str, object] = {}
    for item in setting:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise fail(f"{item!r}: settings are name=value", code=2)
        try:
            changes[name] = json.loads(raw)
        except ValueError:
            changes[name] = raw
    saved = call(lambda c: c.set_provider_settings(provider, **changes))
    print_json(saved) if as_json else console.print_json(data=saved)
