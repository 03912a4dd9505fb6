"""Prometheus metrics for both daemons: ``[metrics]``, who may scrape (a bearer token, client addresses), counter rules.

No I/O beyond reading the token's file when an entry point parses its
configuration. What each daemon exposes is its own (``dashboard/metrics/``,
``gateway/metrics.py``); who may read it, whether SAPA's counts are in it, and
how a daemon's named counters become Prometheus families are decided here the
same way for both.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .access import read_bearer_token, stated_purpose, token_matches
from .settings import Section

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The gateway's listener, unless configured otherwise: this machine only.
DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 9310


class Refusal:
    """Why a scrape is refused: the HTTP status and a short text (never what was expected)."""

    UNAUTHORIZED = (401, "401 Unauthorized: a bearer token is needed\n")
    FORBIDDEN = (403, "403 Forbidden: this address may not read the metrics\n")


@dataclass(frozen=True)
class ScrapeAccess:
    """Who may read the metrics: the holder of ``token`` and/or a client in ``allow`` (both when both are set)."""

    token: str | None = field(default=None, repr=False)
    allow: tuple[Network, ...] = ()

    @property
    def open(self) -> bool:
        return self.token is None and not self.allow

    def refusal(self, authorization: str | None, client: str | None) -> tuple[int, str] | None:
        """None if the scrape may go on, else the status and text to answer with (401 before 403)."""
        if self.token is not None and not token_matches(authorization or "", self.token):
            return Refusal.UNAUTHORIZED
        if self.allow and not address_allowed(client, self.allow):
            return Refusal.FORBIDDEN
        return None


def address_allowed(client: str | None, allow: tuple[Network, ...]) -> bool:
    """Whether ``client`` (an IP address as the server saw it) is in one of ``allow``; anything else is not."""
    try:
        address = ipaddress.ip_address((client or "").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # "::ffff:10.0.0.5" from a dual-stack socket is 10.0.0.5
    return any(address.version == network.version and address in network for network in allow)


@dataclass(frozen=True)
class MetricsSettings:
    """``[metrics]``: off unless ``enabled``; who may scrape; whether SAPA's counts are included (and why)."""

    enabled: bool = False
    access: ScrapeAccess = ScrapeAccess()
    #: False: nothing that moves with SAPA activity is exposed (docs/integrations.md#prometheus-metrics).
    sapa: bool = False
    sapa_purpose: str | None = None
    #: The gateway's own listener (the dashboard serves /metrics on its HTTP port).
    address: str = DEFAULT_ADDRESS
    port: int = DEFAULT_PORT


def read_metrics(section: Section, *, listener: bool) -> MetricsSettings:
    """Read ``[metrics]``; ``listener``: the daemon opens its own port (the gateway), so ``address``/``port``.

    The dashboard's ``/metrics`` shares the port of its pages, so there it needs a
    token or an allow list: a metrics endpoint open to whoever reaches the board is
    a mistake to catch at start, not on the first scrape.
    """
    enabled = section.bool("enabled", False)
    token_file = section.str("token_file", None)
    token = read_bearer_token(section, "token_file", token_file)
    allow = _networks(section, "allow")
    sapa = section.bool("sapa", False)
    purpose = stated_purpose(section, "sapa", sapa)
    extra = {}
    if listener:
        extra["address"] = _address(section, "address", DEFAULT_ADDRESS)
        extra["port"] = section.int("port", DEFAULT_PORT, min=1, max=65535)
    settings = MetricsSettings(
        enabled=enabled, access=ScrapeAccess(token, allow), sapa=sapa, sapa_purpose=purpose, **extra
    )
    if enabled and not listener and settings.access.open:
        raise section.error(
            "enabled",
            "/metrics needs token_file or allow (client addresses or networks); "
            'to let anyone who reaches the dashboard read it, say allow = ["0.0.0.0/0", "::/0"]',
        )
    section.done()
    return settings


def _networks(section: Section, key: str) -> tuple[Network, ...]:
    value = section.raw(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        example = '["127.0.0.1", "10.8.0.0/24"]'
        raise section.error(key, f"must be a list of addresses or networks, e.g. {example} (got {value!r})")
    networks = []
    for item in value:
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise section.error(key, f"{item!r} is not an IP address or network") from None
    return tuple(networks)


def _address(section: Section, key: str, default: str) -> str:
    value = section.str(key, default)
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise section.error(key, f"{value!r} is not an IP address to listen on (127.0.0.1, ::1, 0.0.0.0 ...)") from None
    return value


# -- counters as families ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CounterRule:
    """A counter's name (a regular expression: its named groups become labels) and the family it feeds.

    A daemon names each counter it exposes with a rule: a counter no rule names
    is not exposed, so a new counter never reaches a scraper by accident.
    """

    pattern: re.Pattern[str]
    family: str
    help: str
    labels: tuple[str, ...] = ()
    #: labels whose value is the same for every counter of this rule
    fixed: Mapping[str, str] = field(default_factory=dict)

    @property
    def plain(self) -> bool:
        """One counter, one family without labels."""
        return not self.pattern.groupindex and not self.fixed


def counter_rule(pattern: str, family: str, help: str, **fixed: str) -> CounterRule:
    """``family`` is the full name, ending in ``_total`` as Prometheus names counters."""
    compiled = re.compile(pattern)
    return CounterRule(compiled, family, help, tuple(sorted((*compiled.groupindex, *fixed))), fixed)


Labels = dict[str, str]


def counter_families(
    rules: Sequence[CounterRule],
    counters: Mapping[str, int],
    *,
    keep: Callable[[Labels], bool] | None = None,
    seed: Mapping[str, Sequence[Labels]] | None = None,
) -> list[Metric]:
    """The counters ``rules`` name, as counter families (the first matching rule wins).

    ``keep`` may refuse a sample by its labels whatever the counters hold;
    ``seed`` gives label sets shown at 0 before anything is counted (a rate over
    a series that appears late misses its start). A family with no sample is left
    out: a plain counter that may be shown belongs in ``counters``, at 0 if need be.
    """
    shapes: dict[str, CounterRule] = {}
    values: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for rule in rules:
        shapes.setdefault(rule.family, rule)
        values.setdefault(rule.family, {})
    for family, label_sets in (seed or {}).items():
        for labels in label_sets:
            if family in values and (keep is None or keep(labels)):
                values[family][tuple(sorted(labels.items()))] = 0
    for name, value in counters.items():
        rule, labels = _matching(rules, name)
        if rule is None or (keep is not None and not keep(labels)):
            continue
        key = tuple(sorted(labels.items()))
        values[rule.family][key] = values[rule.family].get(key, 0) + value
    # Imported here: a gateway without [metrics] never loads prometheus_client (its memory counts on a Pi).
    from prometheus_client.metrics_core import CounterMetricFamily

    result: list[Metric] = []
    for family, samples in values.items():
        if not samples:
            continue
        metric = CounterMetricFamily(family, shapes[family].help, labels=list(shapes[family].labels))
        for key, value in sorted(samples.items()):
            metric.add_metric([label for _name, label in key], value)
        result.append(metric)
    return result


def _matching(rules: Sequence[CounterRule], name: str) -> tuple[CounterRule | None, Labels]:
    for rule in rules:
        match = rule.pattern.fullmatch(name)
        if match is not None:
            return rule, {**match.groupdict(), **rule.fixed}
    return None, {}
